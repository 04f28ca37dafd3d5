--[[
  renew: extends every lease a worker holds, in one call.
  KEYS[1] namespace base
  ARGV[1] lease ms
  ARGV[2] worker id (node): seen now (workers:seen), so lease expiries of its runs are known as hiccups, not deaths
  ARGV[3..] triples: run id, token, the step the run is in now ('' between steps), shown by inspection as its current step
  Returns {deadline ms, code per run...}: code 1 renewed, 2 renewed and cancel requested, 0 lost.
  Uses: k_run, k_leases, K_WORKERS_SEEN, now_ms, int, F_QUEUE, F_CANCEL, holder (_lib.lua)
]]
local now = now_ms()
local deadline = now + tonumber(ARGV[1])
local out = { deadline }
redis.call('ZADD', K_WORKERS_SEEN, int(now), ARGV[2])
for i = 3, #ARGV, 3 do
  local id = ARGV[i]
  local r, held = holder(id, ARGV[i + 1])
  if held then
    redis.call('HSET', k_run(id), 'lease_until', deadline, 'current_step', ARGV[i + 2])
    redis.call('ZADD', k_leases(r[F_QUEUE]), deadline, id)
    out[#out + 1] = r[F_CANCEL] and 2 or 1 -- cancel_requested
  else
    out[#out + 1] = 0
  end
end
return out
