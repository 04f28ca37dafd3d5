--[[
  handback: the holder gives a run back without a failure (worker stopping, workflow not registered
  here). Attempt unchanged, resumes + 1; queued at the front, or scheduled after a delay.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] delay ms (0 = at once)
  Returns {'ok'} | {'done'} (a repeat: already handed back) | {'fenced', status}
  Uses: k_run, now_ms, release, requeue, F_STATUS, F_TOKEN, F_QUEUE, F_WORKFLOW, F_CREATED, F_KEY, holder (_lib.lua)
]]
local id = ARGV[1]
local r, held = holder(id, ARGV[2])
if not held then
  if r[F_TOKEN] == ARGV[2] and (r[F_STATUS] == 'queued' or r[F_STATUS] == 'scheduled') then return { 'done' } end
  return { 'fenced', r[F_STATUS] or 'missing' }
end
local now = now_ms()
release(id, r[F_QUEUE], r[F_WORKFLOW], false, r[F_KEY])
redis.call('HINCRBY', k_run(id), 'resumes', 1)
requeue(id, r[F_QUEUE], r[F_WORKFLOW], 'running', tonumber(r[F_CREATED]), now + tonumber(ARGV[3]), now, true)
return { 'ok' }
