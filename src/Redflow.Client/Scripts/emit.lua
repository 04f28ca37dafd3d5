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
  Returns {'created', id} | {'exists', id} (same key or same id: nothing written) | {'unknown', workflow names...}
  Uses: k_run, k_wf, k_idem, K_WORKFLOWS, now_ms, create_run (_lib.lua)
]]
local id, wf = ARGV[1], ARGV[2]
local meta = redis.call('HMGET', k_wf(wf), 'queue', 'max_attempts')
local q = ARGV[4] ~= '' and ARGV[4] or meta[1]
local max_attempts = ARGV[5] ~= '' and ARGV[5] or meta[2]
if not q or not max_attempts then
  local known = redis.call('SMEMBERS', K_WORKFLOWS)
  table.insert(known, 1, 'unknown')
  return known
end
local key = ARGV[8]
if key ~= '' then
  local existing = redis.call('GET', k_idem(wf, key))
  if existing then return { 'exists', existing } end
end
local run = k_run(id)
if redis.call('EXISTS', run) == 1 then return { 'exists', id } end

local now = now_ms()
local available = now
if ARGV[6] ~= '' then available = math.max(now, tonumber(ARGV[6])) end
if ARGV[7] ~= '' then available = now + tonumber(ARGV[7]) end
create_run(id, wf, ARGV[3], q, max_attempts, available, now, key, ARGV[9], ARGV[10], ARGV[11], ARGV[12])
return { 'created', id }
