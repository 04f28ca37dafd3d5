--[[
  reap: requeues waiting runs whose wait is due (a sleep's end, a timeout); for every queue, promotes due
  scheduled runs, puts back keys whose rate limit has room again and takes back expired leases; then purges finished runs and events whose retention has passed. Safe to run from several reapers at once.
  KEYS[1] namespace base
  ARGV[1] at most this many runs per queue and kind
  ARGV[2] abandon after this many lease expiries with no progress
  ARGV[3] cancel grace ms: a running run whose cancel was requested longer ago ends Canceled now
  Returns {promoted, reclaimed, purged, canceled, woken}
  Uses: k_run, k_steps, k_children, k_wf_status, k_wf_runs, k_attempts, k_waits, k_signals, k_events, k_event, K_FINISHED, K_ONFAILURE, K_CANCELS, K_WAITS, K_EVENT_PURGE, K_QUEUES, now_ms, release, wake_due, finish, promote_due, reclaim_expired, unpark_due (_lib.lua)
]]
local limit, abandon_after = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local promoted, reclaimed, purged, canceled, woken = 0, 0, 0, 0, 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_CANCELS, '-inf', now - tonumber(ARGV[3]), 'LIMIT', 0, limit)) do
  redis.call('ZREM', K_CANCELS, id)
  local r = redis.call('HMGET', k_run(id), 'status', 'queue', 'workflow', 'fkey')
  if r[1] == 'running' then -- its handler ignored the token: later writes of that worker are rejected
    release(id, r[2], r[3], false, r[4])
    finish(id, 'canceled', now)
    canceled = canceled + 1
  end
end
-- Due waits (a sleep ended, a timeout passed): the run replays and the wait answers from the clock.
woken = wake_due(now, limit)
for _, q in ipairs(redis.call('SMEMBERS', K_QUEUES)) do
  promoted = promoted + promote_due(q, now, limit)
  unpark_due(q, now, limit) -- keys whose rate window has room again
  reclaimed = reclaimed + reclaim_expired(q, now, limit, abandon_after)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_FINISHED, '-inf', now, 'LIMIT', 0, limit)) do
  local r = redis.call('HMGET', k_run(id), 'workflow', 'status', 'parent_run_id')
  if r[1] then
    redis.call('ZREM', k_wf_status(r[1], r[2]), id)
    redis.call('ZREM', k_wf_runs(r[1]), id)
    if r[3] and r[3] ~= '' then redis.call('ZREM', k_children(r[3]), id) end
  end
  redis.call('ZREM', K_FINISHED, id)
  redis.call('ZREM', K_ONFAILURE, id)
  redis.call('ZREM', K_CANCELS, id)
  redis.call('ZREM', K_WAITS, id)
  redis.call('DEL', k_run(id), k_steps(id), k_children(id), k_attempts(id), k_signals(id), k_waits(id))
  purged = purged + 1
end
for _, eid in ipairs(redis.call('ZRANGEBYSCORE', K_EVENT_PURGE, '-inf', now, 'LIMIT', 0, limit)) do
  local e = redis.call('HMGET', k_event(eid), 'name', 'key')
  if e[1] then redis.call('ZREM', k_events(e[1], e[2] or ''), eid) end
  redis.call('DEL', k_event(eid))
  redis.call('ZREM', K_EVENT_PURGE, eid)
end
return { promoted, reclaimed, purged, canceled, woken }
