--[[
  complete: the run succeeded with an output, if the caller still holds the lease.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] output JSON
  Returns {'ok'} | {'done'} (already completed by this holder) | {'fenced', status}
]]
local id, token = ARGV[1], ARGV[2]
local r, held = holder(id, token)
if not held then
  if r[1] == 'succeeded' and r[2] == token then return { 'done' } end
  return { 'fenced', r[1] or 'missing' }
end
release(id, r[3], r[4])
redis.call('HSET', k_run(id), 'output', ARGV[3])
finish(id, 'succeeded', now_ms())
return { 'ok' }
