--[[
  emit: creates a run (queued, or scheduled when it starts later), once.
  KEYS[1]  namespace base "{prefix}:"
  ARGV[1]  run id (made by the client: a repeated emit finds it)
  ARGV[2]  workflow
  ARGV[3]  input JSON
  ARGV[4]  queue ('' = the workflow's registered queue)
  ARGV[5]  max attempts ('' = the registered value)
  ARGV[6]  run at, unix ms ('' = now)
  ARGV[7]  delay ms, on the Redis clock ('' = none)
  ARGV[8]  idempotency key ('' = none)
  ARGV[9]  idempotency key window ms, counted from the run's end
  ARGV[10] parent run id ('')
  ARGV[11] rerun of run id ('')
  ARGV[12] W3C traceparent of the emitting code ('' = none)
  ARGV[13] priority (a decimal integer, '' = 0)
  ARGV[14] flow-control key ('' = none)
  A workflow with Debounce (debounce_ms in its meta) folds the emit into the pending run of its debounce slot (its key,
  or the workflow's own slot): that run takes this input and starts Period after this emit, at the latest MaxWait after
  the slot's first emit. With no pending run (none yet, or it started), the emit makes one, scheduled Period from now.
  Returns {'created', id} | {'exists', id} (same key or same id: nothing written; or folded: the pending run's id) |
  {'unknown', workflow names...} | {'invalid', message} (nothing written)
  Uses: emit_call (_lib.lua)
]]
return emit_call(ARGV)
