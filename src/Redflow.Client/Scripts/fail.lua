--[[
  fail: a handler failed. Retries with backoff while attempts remain and the error is retriable,
  else fails the run for good (and records a pending OnFailure call when the workflow has one).
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] error JSON {"type":...,"message":...,"stack_trace":...}
  ARGV[4] '1' retriable, '0' not
  ARGV[5] delay before the next attempt, ms
  ARGV[6] failed step name ('' = none)
  ARGV[7] failed step record body JSON (with ARGV[6])
  ARGV[8] how long the failed step ran, ms
  ARGV[9] lease ms: a pending OnFailure call stays with this worker that long before others may claim it
  Returns {'retry', next attempt, available at ms} | {'failed'} | {'done'} | {'fenced', status}
  Uses: k_run, k_steps, k_attempts, K_COUNTERS, now_ms, int, TERMINAL, release, requeue, F_STATUS, F_TOKEN, F_QUEUE, F_WORKFLOW, F_CREATED, F_ATTEMPT, F_MAX_ATTEMPTS, F_KEY, progressed, put_step, fail_final, has_on_failure, holder (_lib.lua)
]]
local id, token = ARGV[1], ARGV[2]
local r, held = holder(id, token)
if not held then
  -- A repeat by the same holder: its failure already moved the run on (retry scheduled or failed for good).
  if r[F_TOKEN] == token and (TERMINAL[r[F_STATUS]] or r[F_STATUS] == 'scheduled' or r[F_STATUS] == 'queued') then return { 'done' } end
  return { 'fenced', r[F_STATUS] or 'missing' }
end
local now = now_ms()
local run = k_run(id)
local step = ARGV[6]
if step ~= '' then
  local existing = redis.call('HGET', k_steps(id), step)
  if not (existing and string.find(existing, '"status":"succeeded"', 1, true)) then
    put_step(id, step, ARGV[7], now - tonumber(ARGV[8]), now, existing)
  end
end
release(id, r[F_QUEUE], r[F_WORKFLOW], false, r[F_KEY])
local attempt, max_attempts = tonumber(r[F_ATTEMPT]), tonumber(r[F_MAX_ATTEMPTS])
if ARGV[4] == '1' and attempt < max_attempts then
  redis.call('HSET', run, 'error', ARGV[3], 'attempt', attempt + 1)
  -- The attempt history: when the lease that ran this attempt started (leased_at, written by each claim), when it
  -- failed, on which worker, with which error.
  local held = redis.call('HMGET', run, 'worker', 'leased_at')
  redis.call('RPUSH', k_attempts(id), '{"attempt":' .. attempt .. ',"started_at":' .. (held[2] or int(now)) .. ',"failed_at":' .. int(now) ..
    ',"worker":' .. cjson.encode(held[1] or '') .. ',"error":' .. ARGV[3] .. '}')
  progressed(id, r)
  redis.call('HINCRBY', K_COUNTERS, 'retried', 1)
  local available = now + tonumber(ARGV[5])
  requeue(id, r[F_QUEUE], r[F_WORKFLOW], 'running', tonumber(r[F_CREATED]), available, now, false)
  return { 'retry', attempt + 1, available }
end
fail_final(id, ARGV[3], now, has_on_failure(r[F_WORKFLOW]) and now + tonumber(ARGV[9]), r)
return { 'failed' }
