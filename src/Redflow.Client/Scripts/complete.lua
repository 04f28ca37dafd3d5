--[[
  complete: the run succeeded with an output, if the caller still holds the lease. With a request id, the
  same call also claims the next ready run for the freed worker slot (BullMQ's "finish and fetch next"),
  from the worker's queues in priority order, so a busy worker pays about one round trip per run.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] output JSON
  ARGV[4] request id for claiming the next run ('' = do not claim)
  ARGV[5] lease ms (with ARGV[4])
  ARGV[6] worker id (with ARGV[4])
  ARGV[7..] the worker's queues, in priority order (with ARGV[4])
  Returns {'ok', next runs} | {'done', next runs} (a repeat: the first call's next runs) | {'fenced', status}
  (next runs as claim.lua returns them: at most one)
]]
local id, token, req = ARGV[1], ARGV[2], ARGV[4]
local r, held = holder(id, token)
if not held then
  if r[1] == 'succeeded' and r[2] == token then
    local prior = req ~= '' and redis.call('GET', k_claim(req))
    return { 'done', prior and cjson.decode(prior) or {} }
  end
  return { 'fenced', r[1] or 'missing' }
end
release(id, r[3], r[4])
redis.call('HSET', k_run(id), 'output', ARGV[3])
local now = now_ms()
finish(id, 'succeeded', now)
local next_runs = {}
if req ~= '' then
  for i = 7, #ARGV do
    claim_from(ARGV[i], 1, ARGV[6], tonumber(ARGV[5]), now, next_runs)
    if #next_runs > 0 then break end
  end
  if #next_runs > 0 then redis.call('SET', k_claim(req), cjson.encode(next_runs), 'PX', 60000) end
end
return { 'ok', next_runs }
