--[[
  wait: a handler reached a wait (a child's end, a sleep, a signal, an event). Takes what the wait waits for if it is
  there now and records it as the step's result; records a timeout once the deadline passed; else answers 'pending'
  with the deadline, and the worker suspends the run (suspend.lua) once every unfinished call of its handler waits.
  Safe to repeat: a recorded wait answers from its record.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] step name
  ARGV[4] attempt
  ARGV[5] kind: 'child' | 'sleep' | 'signal' | 'event'
  ARGV[6] the child run id, signal name or event name ('' for a sleep)
  ARGV[7] event key ('' = none)
  ARGV[8] ms from the first time this step waited: a sleep's duration or a timeout ('' = none)
  ARGV[9] a SleepUntil's time, unix ms ('' = none)
  Returns {'recorded', step record JSON} (recorded before) | {'ok', output JSON} (taken and recorded now) | {'timeout'}
          (recorded now) | {'pending', deadline ms or ''} | {'failed', error JSON} | {'canceled', reason} (a child)
          | {'missing'} (no such child) | {'fenced', status}
  Uses: k_run, k_steps, k_event, now_ms, int, F_STATUS, F_CREATED, progressed, put_step, holder, wait_deadline, next_signal, event_pos_field, next_event (_lib.lua)
]]
local id, token, step, attempt, kind, name, key = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local existing = redis.call('HGET', k_steps(id), step)
if existing and (string.find(existing, '"status":"succeeded"', 1, true) or string.find(existing, '"timed_out":true', 1, true)) then
  return { 'recorded', existing }
end
local r, held = holder(id, token)
if not held then return { 'fenced', r[F_STATUS] or 'missing' } end
local now = now_ms()
local deadline, since = wait_deadline(id, step, ARGV[8], ARGV[9], now)
local head = '{"name":' .. cjson.encode(step) .. ',"status":"succeeded","attempt":' .. attempt .. ',"kind":"' .. kind .. '"'

-- Records the wait's result (output JSON, and more fields of the record) as the step's record.
local function satisfied(output, fields)
  put_step(id, step, head .. (fields or '') .. ',"output":' .. output .. '}', since, now, existing)
  progressed(id, r)
  return { 'ok', output }
end

if kind == 'child' then
  local c = redis.call('HMGET', k_run(name), 'status', 'output', 'error', 'cancel_reason')
  if not c[1] then return { 'missing' } end
  if c[1] == 'succeeded' then return satisfied(c[2], ',"child_run_id":' .. cjson.encode(name)) end
  -- A failed or canceled child is not recorded: the parent's step fails, and its retry starts a fresh child.
  if c[1] == 'failed' then return { 'failed', c[3] or '{}' } end
  if c[1] == 'canceled' then return { 'canceled', c[4] or '' } end
elseif kind == 'sleep' then
  if now >= deadline then return satisfied('null') end
elseif kind == 'signal' then
  local payload = next_signal(id, name, true)
  if payload then return satisfied(payload) end
elseif kind == 'event' then
  local eid, order = next_event(id, name, key, tonumber(r[F_CREATED]))
  if eid then
    redis.call('HSET', k_run(id), event_pos_field(name, key), order)
    return satisfied(redis.call('HGET', k_event(eid), 'payload') or 'null', ',"event_id":' .. cjson.encode(eid))
  end
end
if deadline and now >= deadline then
  -- Timed out: recorded like a result, so a replay throws the timeout again.
  put_step(id, step, '{"name":' .. cjson.encode(step) .. ',"status":"failed","attempt":' .. attempt .. ',"kind":"' .. kind ..
    '","timed_out":true,"error":' .. cjson.encode({ type = 'Redflow.RedflowTimeoutException',
      message = 'Step \'' .. step .. '\' timed out: its ' .. kind .. ' wait passed its deadline.' }) .. '}', since, now, existing)
  progressed(id, r)
  return { 'timeout' }
end
return { 'pending', deadline and int(deadline) or '' }
