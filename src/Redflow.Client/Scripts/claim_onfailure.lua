--[[
  claim_onfailure: takes due OnFailure calls of the given workflows (their failing worker died, or the run was
  abandoned) for this worker, each for one lease period. The caller makes the call, then removes the entry.
  KEYS[1] namespace base
  ARGV[1] lease ms
  ARGV[2] at most this many
  ARGV[3..] workflows this worker has
  Returns a list of {run id, workflow, queue, input, error JSON, attempt, max attempts}
  Uses: k_run, K_ONFAILURE, now_ms (_lib.lua)
]]
local now = now_ms()
local mine = {}
for i = 3, #ARGV do mine[ARGV[i]] = true end
local out = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_ONFAILURE, '-inf', now, 'LIMIT', 0, 100)) do
  if #out >= tonumber(ARGV[2]) then break end
  local r = redis.call('HMGET', k_run(id), 'workflow', 'queue', 'input', 'error', 'attempt', 'max_attempts')
  if not r[1] then
    redis.call('ZREM', K_ONFAILURE, id)
  elseif mine[r[1]] then
    redis.call('ZADD', K_ONFAILURE, now + tonumber(ARGV[1]), id)
    out[#out + 1] = { id, r[1], r[2], r[3], r[4] or '{}', r[5], r[6] }
  end
end
return out
