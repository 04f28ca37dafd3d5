--[[
  cron_pause: pauses or resumes one cron trigger of a workflow. A paused trigger fires nothing: the cron tick marks its
  instants handled without a run. Resuming advances the trigger's last handled instant to now (forward only, and only
  when it has one), so the instants that passed while it was paused are skipped, not fired late by the misfire policy.
  Idempotent: pausing a paused trigger or resuming an active one writes nothing.
  KEYS[1] namespace base
  ARGV[1] workflow
  ARGV[2] trigger id
  ARGV[3] '1' pause, '0' resume
  Returns 1 changed, 0 already so, -1 the workflow is not registered, -2 it has no trigger with that id (nothing written)
  Uses: k_wf, k_cron, k_cron_paused, now_ms (_lib.lua)
]]
local wf, trigger, pause = ARGV[1], ARGV[2], ARGV[3] == '1'
local published = redis.call('HGET', k_wf(wf), 'cron')
if not published then return -1 end
local found = false
local ok, triggers = pcall(cjson.decode, published)
if ok and type(triggers) == 'table' then
  for _, t in ipairs(triggers) do
    if type(t) == 'table' and t.id == trigger then found = true end
  end
end
if not found then return -2 end
local key = k_cron_paused(trigger)
local paused = redis.call('EXISTS', key) == 1
if pause == paused then return 0 end
local now = now_ms()
if pause then
  redis.call('SET', key, now)
else
  redis.call('DEL', key)
  local last = tonumber(redis.call('GET', k_cron(trigger)) or '0')
  if last > 0 and now > last then redis.call('SET', k_cron(trigger), now) end
end
return 1
