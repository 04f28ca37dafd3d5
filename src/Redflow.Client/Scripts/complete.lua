--[[
  complete: the run succeeded with an output, if the caller still holds the lease. With a request id, the
  same call also claims the next ready run for the freed worker slot (BullMQ's "finish and fetch next"),
  from the worker's queues in priority order, so a busy worker pays about one round trip per run.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] output JSON
  ARGV[4] '1': also claim the next run for the freed slot ('' = do not claim)
  ARGV[5] lease ms (with ARGV[4])
  ARGV[6] worker id (with ARGV[4])
  ARGV[7..] the worker's queues, in priority order (with ARGV[4])
  Returns {'ok', next runs} | {'done', next runs} (a repeat: the first call's next run, if it still holds it) |
  {'fenced', status} (next runs as claim.lua returns them: at most one)
  Uses: k_run, now_ms, ring_if_waiting, release, F_STATUS, F_TOKEN, F_QUEUE, F_WORKFLOW, F_ATTEMPT, F_KEY, finish, next_token, claim_from, leased_run, holder (_lib.lua)
]]
local id, token, claim_next = ARGV[1], ARGV[2], ARGV[4] == '1'
local r, held = holder(id, token)
if not held then
  if r[F_STATUS] == 'succeeded' and r[F_TOKEN] == token then
    local prior = redis.call('HMGET', k_run(id), 'next_run', 'next_token')
    return { 'done', { prior[1] and leased_run(prior[1], prior[2]) or nil } }
  end
  return { 'fenced', r[F_STATUS] or 'missing' }
end
local freed = release(id, r[F_QUEUE], r[F_WORKFLOW], true, r[F_KEY])
local now = now_ms()
-- The freed slot takes the next ready run first (the release made room under the cap); the run's record
-- keeps which run that was, for a repeat of this call.
local next_runs = {}
if claim_next then
  for i = 7, #ARGV do
    claim_from(ARGV[i], 1, ARGV[6], tonumber(ARGV[5]), now, next_runs)
    if #next_runs > 0 then break end
  end
end
local extra = { 'output', ARGV[3] }
if #next_runs > 0 then
  extra[3], extra[4], extra[5], extra[6] = 'next_run', next_runs[1][1], 'next_token', next_runs[1][2]
end
finish(id, 'succeeded', now, extra, r)
-- A run that succeeded ended with no error: a retried one's earlier errors stay in its attempt history.
if r[F_ATTEMPT] ~= '1' then redis.call('HDEL', k_run(id), 'error') end
-- The slot was not used here: if runs of the workflow wait, another worker may take it.
if freed and #next_runs == 0 then ring_if_waiting(r[F_QUEUE], r[F_WORKFLOW]) end
return { 'ok', next_runs }
