--[[
  handback: the holder gives a run back without a failure (worker stopping, workflow not registered
  here). Attempt unchanged, resumes + 1; queued at the front, or scheduled after a delay.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] delay ms (0 = at once)
  Returns {'ok'} | {'done'} (a repeat: already handed back) | {'fenced', status}
]]
local id = ARGV[1]
local r, held = holder(id, ARGV[2])
if not held then
  if r[2] == ARGV[2] and (r[1] == 'queued' or r[1] == 'scheduled') then return { 'done' } end
  return { 'fenced', r[1] or 'missing' }
end
local now = now_ms()
release(id, r[3], r[4])
redis.call('HINCRBY', k_run(id), 'resumes', 1)
requeue(id, r[3], r[4], 'running', tonumber(r[5]), now + tonumber(ARGV[3]), now, true)
return { 'ok' }
