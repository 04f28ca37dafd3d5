--[[
  complete: the run succeeded with an output, if the caller still holds the lease. With a request id, the
  same call also claims the next ready run for the freed worker slot (BullMQ's "finish and fetch next"),
  from the worker's queues in priority order, so a busy worker pays about one round trip per run.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] output JSON
  ARGV[4] '1': also claim the next run for the freed slot ('' = do not claim)
  ARGV[5] lease ms (with ARGV[4])
  ARGV[6] worker id (with ARGV[4])
  ARGV[7..] the worker's queues, in priority order (with ARGV[4])
  Returns {'ok', next runs} | {'done', next runs} (a repeat: the first call's next run, if it still holds it) |
  {'fenced', status} (next runs as claim.lua returns them: at most one)
  Uses: complete_call (_lib.lua)
]]
return complete_call(ARGV)
