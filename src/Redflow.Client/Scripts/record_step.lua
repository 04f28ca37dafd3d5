--[[
  record_step: records a step's result for a run, once, if the caller still holds the lease.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] step name
  ARGV[4] step record body, a JSON object built by the worker ({"status":...,"attempt":...,"output":...})
  ARGV[5] how long the step function ran, ms (its start is placed on the Redis clock)
  Returns {'ok'} | {'exists', record} (recorded before: the recorded one wins) | {'fenced', status}
  Uses: k_steps, now_ms, F_STATUS, progressed, put_step, holder (_lib.lua)
]]
local id, name = ARGV[1], ARGV[3]
local r, held = holder(id, ARGV[2])
local existing = redis.call('HGET', k_steps(id), name)
if existing and string.find(existing, '"status":"succeeded"', 1, true) then return { 'exists', existing } end
if not held then return { 'fenced', r[F_STATUS] or 'missing' } end
local now = now_ms()
put_step(id, name, ARGV[4], now - tonumber(ARGV[5]), now, existing)
progressed(id, r) -- the abandonment count starts over
return { 'ok' }
