--[[
  cancel: a client asks to cancel a run, or the worker holding a canceled run acknowledges it.
  A scheduled, queued or waiting run is canceled at once (a waiting run's waits removed, the children it waits on canceled). A running run is
  marked: its worker is told (the cancel channel, and the lease renewal as a fallback), and the reaper
  ends it Canceled after the workers' CancelGrace if its handler ignores the token (reap.lua).
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] reason ('' = none)
  ARGV[3] fencing token ('' = a client request; else the holder acknowledges: the run ends Canceled now)
  Returns 1 when the cancel was recorded (or is under way), 0 for an unknown or finished run.
  Uses: k_run, k_scheduled, k_ready_at, k_ring_at, k_kready, K_CANCELS, K_CANCEL_CHANNEL, now_ms, TERMINAL, level_removed, release, clear_waits, finish (_lib.lua)
]]
local function cancel(id, reason, token, now)
  local run = k_run(id)
  local r = redis.call('HMGET', run, 'status', 'queue', 'workflow', 'created_at', 'token', 'cancel_reason', 'priority', 'fkey')
  local status = r[1]
  if not status or TERMINAL[status] then return 0 end
  if status == 'running' and token ~= '' and r[5] ~= token then return 0 end
  if status == 'running' and token == '' then
    if redis.call('HEXISTS', run, 'cancel_requested') == 1 then return 1 end
    redis.call('HSET', run, 'cancel_requested', now, 'cancel_reason', reason)
    redis.call('ZADD', K_CANCELS, now, id)
    redis.call('PUBLISH', K_CANCEL_CHANNEL, id)
    return 1
  end
  if status == 'running' then release(id, r[2], r[3], false, r[8]) end
  if status == 'queued' then
    -- Out of its ready list, or its key's list; a workflow left with no ready entry leaves its ring.
    local q, p, key = r[2], r[7] or '0', r[8] or ''
    local list = k_ready_at(q, p, r[3])
    if key ~= '' then
      redis.call('LREM', k_kready(q, p, r[3], key), 0, id)
      -- The key's last queued run: its marker goes too (else a later emit of the key would add a second one).
      if redis.call('LLEN', k_kready(q, p, r[3], key)) == 0 then redis.call('LREM', list, 0, '\n' .. key) end
    else
      redis.call('LREM', list, 0, id)
    end
    if redis.call('LLEN', list) == 0 then
      redis.call('LREM', k_ring_at(q, p), 0, r[3])
      if p ~= '0' and redis.call('LLEN', k_ring_at(q, p)) == 0 then level_removed(q, p) end
    end
  elseif status == 'scheduled' then
    redis.call('ZREM', k_scheduled(r[2]), id)
  elseif status == 'waiting' then
    -- Its waits go, and the children it waits on are canceled with it.
    for _, f in ipairs(clear_waits(id)) do
      local child = string.match(f, '^\nc\n(.*)$')
      if child then cancel(child, 'parent run ' .. id .. ' was canceled', '', now) end
    end
  end
  redis.call('ZREM', K_CANCELS, id)
  if token == '' or not r[6] then redis.call('HSET', run, 'cancel_reason', reason) end
  finish(id, 'canceled', now)
  return 1
end

return cancel(ARGV[1], ARGV[2], ARGV[3], now_ms())
