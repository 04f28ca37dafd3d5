--[[
  register: a worker publishes its workflows' metadata and its heartbeat (at start and periodically).
  KEYS[1] namespace base
  ARGV[1] app
  ARGV[2] node (worker id)
  ARGV[3] worker info JSON
  ARGV[4..] groups of 7: name, queue, max concurrency, max attempts, retention ms, has OnFailure ('1'/'0'), cron JSON
  Returns the Redis time, ms.
  Uses: k_wf, k_wf_workers, K_WORKFLOWS, K_QUEUES, K_WORKERS, K_WORKERS_SEEN, now_ms, has_on_failure (_lib.lua)
]]
local now = now_ms()
redis.call('HSET', K_WORKERS, ARGV[2], ARGV[3])
redis.call('ZADD', K_WORKERS_SEEN, now, ARGV[2])
for i = 4, #ARGV, 7 do
  local wf = ARGV[i]
  redis.call('HSET', k_wf(wf), 'name', wf, 'queue', ARGV[i + 1], 'max_concurrency', ARGV[i + 2],
    'max_attempts', ARGV[i + 3], 'retention_ms', ARGV[i + 4], 'has_on_failure', ARGV[i + 5], 'cron', ARGV[i + 6])
  redis.call('HSET', k_wf_workers(wf), ARGV[1], now)
  redis.call('SADD', K_WORKFLOWS, wf)
  redis.call('SADD', K_QUEUES, ARGV[i + 1])
end
return now
