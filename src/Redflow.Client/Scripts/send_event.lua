--[[
  send_event: an event by name and key. Kept for the retention (waits that come later find it: wait.lua takes the
  earliest event sent after its run was created and not taken by an earlier wait of the run); every run waiting on
  (name, key) is requeued; every workflow with an event trigger of that name gets one run, the payload as its input.
  Once per event: a repeat with the same idempotency key (per event name) returns the first event's id and does nothing.
  KEYS[1] namespace base
  ARGV[1] event id (made by the client)
  ARGV[2] event name
  ARGV[3] event key ('' = none)
  ARGV[4] payload JSON
  ARGV[5] idempotency key ('' = none)
  ARGV[6] retention ms
  ARGV[7] W3C traceparent of the sending code ('' = none), for the runs it starts
  Returns {event id, runs resumed, runs started}
  Uses: k_run, k_wf, k_events, k_event, k_event_waiters, k_event_idem, k_event_triggers, K_EVENT_PURGE, K_EVENT_CLOCK, now_ms, int, count, wake, create_run (_lib.lua)
]]
local eid, name, key, payload, ikey, retention = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
if ikey ~= '' then
  local first = redis.call('GET', k_event_idem(name, ikey))
  if first then return { first, 0, 0 } end
  redis.call('SET', k_event_idem(name, ikey), eid, 'PX', int(retention))
end
local now = now_ms()
-- The send order: the Redis clock in microseconds, strictly increasing, so a wait compares it with its run's creation.
local order = math.max(now * 1000, tonumber(redis.call('GET', K_EVENT_CLOCK) or '0') + 1)
redis.call('SET', K_EVENT_CLOCK, int(order))
redis.call('HSET', k_event(eid), 'name', name, 'key', key, 'payload', payload, 'sent_at', int(now))
redis.call('ZADD', k_events(name, key), int(order), eid)
redis.call('ZADD', K_EVENT_PURGE, int(now + retention), eid)
count('events')
local resumed = 0
for _, id in ipairs(redis.call('SMEMBERS', k_event_waiters(name, key))) do
  if wake(id, now) then resumed = resumed + 1 else redis.call('SREM', k_event_waiters(name, key), id) end
end
local started = 0
for _, wf in ipairs(redis.call('SMEMBERS', k_event_triggers(name))) do
  local meta = redis.call('HMGET', k_wf(wf), 'queue', 'max_attempts')
  -- The run's id is derived from the event and the workflow: one run per event and workflow, whoever sends.
  local id = 'run_' .. string.sub(redis.sha1hex(eid .. '\0' .. wf), 1, 26)
  if meta[1] and redis.call('EXISTS', k_run(id)) == 0 then
    create_run(id, wf, payload, meta[1], meta[2], now, now, '', '86400000', '', '', ARGV[7])
    started = started + 1
  end
end
return { eid, resumed, started }
