--[[
  suspend: every unfinished call of a run's handler is a wait, and none can move on: the run becomes waiting. Its
  lease, worker slot and concurrency slot are released and its waits recorded; whatever satisfies one of them (a child's
  end, a due deadline, a signal, an event) requeues it (wake in _lib.lua). Checked again here, atomically: if one of the
  waits can move on already (a signal arrived since the worker asked), nothing is written and the worker takes it.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3..] groups of 5: step, kind ('child' | 'sleep' | 'signal' | 'event'), child run id / signal / event name
            ('' for a sleep), event key (''), deadline ms ('' = none), as wait.lua answered them
  Returns {'waiting'} | {'ready', step} (that wait can move on: nothing written) | {'fenced', status}
  Uses: k_run, k_waits, k_event_waiters, K_WAITS, K_COUNTERS, now_ms, int, move_status, release, F_STATUS, F_QUEUE, F_WORKFLOW, F_CREATED, F_KEY, holder, wait_ready (_lib.lua)
]]
local id, token = ARGV[1], ARGV[2]
local r, held = holder(id, token)
if not held then return { 'fenced', r[F_STATUS] or 'missing' } end
local now = now_ms()
local created = tonumber(r[F_CREATED])
local waits, earliest = {}, nil
for i = 3, #ARGV, 5 do
  local w = { step = ARGV[i], kind = ARGV[i + 1], name = ARGV[i + 2], key = ARGV[i + 3], deadline = tonumber(ARGV[i + 4]) }
  if wait_ready(id, w.kind, w.name, w.key, w.deadline, created, now) then return { 'ready', w.step } end
  if w.deadline and (not earliest or w.deadline < earliest) then earliest = w.deadline end
  waits[#waits + 1] = w
end
local wk = k_waits(id)
redis.call('DEL', wk)
for _, w in ipairs(waits) do
  redis.call('HSET', wk, w.step, cjson.encode({ kind = w.kind, name = w.name, key = w.key, ['until'] = w.deadline }))
  if w.kind == 'child' then
    redis.call('HSET', wk, '\nc\n' .. w.name, w.step)
  elseif w.kind == 'signal' then
    redis.call('HSET', wk, '\ns\n' .. w.name, w.step)
  elseif w.kind == 'event' then
    redis.call('HSET', wk, '\ne\n' .. w.name .. '\n' .. w.key, w.step)
    redis.call('SADD', k_event_waiters(w.name, w.key), id)
  end
end
if earliest then redis.call('ZADD', K_WAITS, int(earliest), id) end
release(id, r[F_QUEUE], r[F_WORKFLOW], false, r[F_KEY])
redis.call('HSET', k_run(id), 'status', 'waiting')
move_status(id, r[F_WORKFLOW], 'running', 'waiting', created)
redis.call('HINCRBY', K_COUNTERS, 'suspended', 1)
return { 'waiting' }
