--[[
  register: a worker publishes its workflows' metadata and its heartbeat (at start and periodically).
  KEYS[1] namespace base
  ARGV[1] app
  ARGV[2] node (worker id)
  ARGV[3] worker info JSON
  ARGV[4..] groups of 13: name, queue, max concurrency, max attempts, retention ms, has OnFailure ('1'/'0'), cron JSON,
           event trigger names (newline-separated, '' = none), flow control ('' = none): max concurrency per key,
           rate limit, rate period ms, debounce period ms, debounce max wait ms
  Returns the Redis time, ms.
  Uses: k_wf, k_wf_workers, k_event_triggers, K_WORKFLOWS, K_QUEUES, K_WORKERS, K_WORKERS_SEEN, now_ms, has_on_failure (_lib.lua)
]]
local now = now_ms()
redis.call('HSET', K_WORKERS, ARGV[2], ARGV[3])
redis.call('ZADD', K_WORKERS_SEEN, now, ARGV[2])
for i = 4, #ARGV, 13 do
  local wf = ARGV[i]
  -- Event triggers: the workflow joins the trigger set of each of its event names, and leaves those it no longer has.
  local before = redis.call('HGET', k_wf(wf), 'events') or ''
  if before ~= ARGV[i + 7] then
    for name in string.gmatch(before, '[^\n]+') do redis.call('SREM', k_event_triggers(name), wf) end
    for name in string.gmatch(ARGV[i + 7], '[^\n]+') do redis.call('SADD', k_event_triggers(name), wf) end
  end
  redis.call('HSET', k_wf(wf), 'name', wf, 'queue', ARGV[i + 1], 'max_concurrency', ARGV[i + 2],
    'max_attempts', ARGV[i + 3], 'retention_ms', ARGV[i + 4], 'has_on_failure', ARGV[i + 5], 'cron', ARGV[i + 6], 'events', ARGV[i + 7],
    'key_cap', ARGV[i + 8], 'rate_limit', ARGV[i + 9], 'rate_period_ms', ARGV[i + 10], 'debounce_ms', ARGV[i + 11], 'debounce_max_ms', ARGV[i + 12])
  redis.call('HSET', k_wf_workers(wf), ARGV[1], now)
  redis.call('SADD', K_WORKFLOWS, wf)
  redis.call('SADD', K_QUEUES, ARGV[i + 1])
end
return now
