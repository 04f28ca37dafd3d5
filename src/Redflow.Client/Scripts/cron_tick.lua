--[[
  cron_tick: fires due instants of one cron trigger, once each: one run per (trigger, instant) however many
  cron actors call this (the run id and the idempotency key are derived from the trigger and the instant),
  skipped when the workflow is at MaxConcurrency. While the trigger is paused (cron_pause) every instant is handled
  without a run: skipped, never fired later. Remembers the last instant handled, which only moves forward.
  KEYS[1] namespace base
  ARGV[1] workflow
  ARGV[2] trigger id
  ARGV[3] input JSON
  ARGV[4] queue
  ARGV[5] max attempts
  ARGV[6] idempotency key window ms
  ARGV[7..] pairs: instant (unix ms), run id, for the instants to fire, oldest first; an empty run id only
           marks the instant handled (a first start, or misfires skipped by the policy)
  Returns {fired, skipped}
  Uses: k_run, k_idem, k_cron, k_cron_paused, now_ms, count, wf_settings, running_count, create_run (_lib.lua)
]]
local wf, trigger = ARGV[1], ARGV[2]
local last_key = k_cron(trigger)
local last = tonumber(redis.call('GET', last_key) or '0')
local now = now_ms()
local paused = redis.call('EXISTS', k_cron_paused(trigger)) == 1
local fired, skipped = 0, 0
for i = 7, #ARGV, 2 do
  local instant, id = tonumber(ARGV[i]), ARGV[i + 1]
  if instant > last then
    local key = 'cron:' .. trigger .. ':' .. instant
    local cap = wf_settings(wf).cap
    if id == '' or paused then
      -- handled without a run
    elseif redis.call('EXISTS', k_idem(wf, key)) == 1 or redis.call('EXISTS', k_run(id)) == 1 then
      -- fired already by another cron actor
    elseif running_count(wf) >= cap then
      skipped = skipped + 1
      count('cron_skipped')
    else
      create_run(id, wf, ARGV[3], ARGV[4], ARGV[5], now, now, key, ARGV[6], '', '', '')
      fired = fired + 1
      count('cron_fired')
    end
    last = instant
  end
end
redis.call('SET', last_key, last)
return { fired, skipped }
