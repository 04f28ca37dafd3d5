--[[
  resume: an operator takes a failed or canceled run back to queued as the same run (client.ResumeRunAsync).
  Its recorded steps are kept (a claim serves the succeeded ones from the record, so they do not run again); it gets
  a fresh budget of attempts: the next attempt is attempt + 1 (attempt numbers stay unique, so a child started by a
  step of the new attempt is a new child) and max_attempts becomes that attempt plus the workflow's MaxAttempts
  less one. The error, finish time and cancel marks are cleared; resumes grows by one and resumed_at is set; the
  run leaves the retention and OnFailure schedules; its idempotency key (if still there) is kept until it finishes
  again. Safe to repeat: a second call finds the run queued (or further) and changes nothing.
  KEYS[1] namespace base
  ARGV[1] run id
  Returns {1, status} when resumed, {0, status} when the run is not Failed or Canceled (left as it is), {-1} for an unknown run.
  Uses: k_run, k_wf, k_idem, K_FINISHED, K_ONFAILURE, K_CANCELS, now_ms, int, count, requeue (_lib.lua)
]]
local id = ARGV[1]
local run = k_run(id)
local r = redis.call('HMGET', run, 'status', 'queue', 'workflow', 'created_at', 'attempt', 'max_attempts', 'idempotency_key')
local status = r[1]
if not status then return { -1 } end
if status ~= 'failed' and status ~= 'canceled' then return { 0, status } end
local now = now_ms()
local q, wf = r[2], r[3]
local attempt = tonumber(r[5] or '1')
local budget = tonumber(redis.call('HGET', k_wf(wf), 'max_attempts') or r[6] or '1')
redis.call('ZREM', K_FINISHED, id)
redis.call('ZREM', K_ONFAILURE, id)
redis.call('ZREM', K_CANCELS, id)
redis.call('HDEL', run, 'error', 'finished_at', 'cancel_reason', 'cancel_requested', 'stalls', 'suspect', 'suspect_at', 'waiting_on')
if r[7] and r[7] ~= '' then redis.call('PERSIST', k_idem(wf, r[7])) end
redis.call('HINCRBY', run, 'resumes', 1)
count('resumed')
requeue(id, q, wf, status, tonumber(r[4]), 0, now, false,
  { 'attempt', int(attempt + 1), 'max_attempts', int(attempt + budget), 'resumed_at', int(now) })
return { 1, status }
