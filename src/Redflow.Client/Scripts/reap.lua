--[[
  reap: for every queue, promotes due scheduled runs and takes back expired leases; then purges
  finished runs whose retention has passed from every index. Safe to run from several reapers at once.
  KEYS[1] namespace base
  ARGV[1] at most this many runs per queue and kind
  ARGV[2] abandon after this many lease expiries with no progress
  Returns {promoted, reclaimed, purged}
]]
local limit, abandon_after = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local promoted, reclaimed, purged = 0, 0, 0
for _, q in ipairs(redis.call('SMEMBERS', K_QUEUES)) do
  promoted = promoted + promote_due(q, now, limit)
  reclaimed = reclaimed + reclaim_expired(q, now, limit, abandon_after)
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_FINISHED, '-inf', now, 'LIMIT', 0, limit)) do
  local r = redis.call('HMGET', k_run(id), 'workflow', 'status', 'parent_run_id')
  if r[1] then
    redis.call('ZREM', k_status(r[2]), id)
    redis.call('ZREM', k_wf_status(r[1], r[2]), id)
    redis.call('ZREM', k_wf_runs(r[1]), id)
    if r[3] and r[3] ~= '' then redis.call('ZREM', k_children(r[3]), id) end
  end
  redis.call('ZREM', K_RUNS, id)
  redis.call('ZREM', K_FINISHED, id)
  redis.call('ZREM', K_ONFAILURE, id)
  redis.call('DEL', k_run(id), k_steps(id), k_children(id))
  purged = purged + 1
end
return { promoted, reclaimed, purged }
