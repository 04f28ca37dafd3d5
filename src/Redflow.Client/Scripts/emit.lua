--[[
  emit: creates a run (queued, or scheduled when it starts later), once.
  KEYS[1]  namespace base "{prefix}:"
  ARGV[1]  run id (made by the client: a repeated emit finds it)
  ARGV[2]  workflow
  ARGV[3]  input JSON
  ARGV[4]  queue ('' = the workflow's registered queue)
  ARGV[5]  max attempts ('' = the registered value)
  ARGV[6]  run at, unix ms ('' = now)
  ARGV[7]  delay ms, on the Redis clock ('' = none)
  ARGV[8]  idempotency key ('' = none)
  ARGV[9]  idempotency key window ms, counted from the run's end
  ARGV[10] parent run id ('')
  ARGV[11] rerun of run id ('')
  ARGV[12] W3C traceparent of the emitting code ('' = none)
  ARGV[13] priority (a decimal integer, '' = 0)
  ARGV[14] flow-control key ('' = none)
  A workflow with Debounce (debounce_ms in its meta) folds the emit into the pending run of its debounce slot (its key,
  or the workflow's own slot): that run takes this input and starts Period after this emit, at the latest MaxWait after
  the slot's first emit. With no pending run (none yet, or it started), the emit makes one, scheduled Period from now.
  Returns {'created', id} | {'exists', id} (same key or same id: nothing written; or folded: the pending run's id) |
  {'unknown', workflow names...} | {'invalid', message} (nothing written)
  Uses: k_run, k_scheduled, k_wf, k_idem, k_debounce, k_folded, K_WORKFLOWS, now_ms, int, create_run (_lib.lua)
]]
local id, wf = ARGV[1], ARGV[2]
local meta = redis.call('HMGET', k_wf(wf), 'queue', 'max_attempts', 'debounce_ms', 'debounce_max_ms')
local q = ARGV[4] ~= '' and ARGV[4] or meta[1]
local max_attempts = ARGV[5] ~= '' and ARGV[5] or meta[2]
if not q or not max_attempts then
  local known = redis.call('SMEMBERS', K_WORKFLOWS)
  table.insert(known, 1, 'unknown')
  return known
end
local debounce, max_wait = tonumber(meta[3] or ''), tonumber(meta[4] or '')
if debounce and (ARGV[6] ~= '' or ARGV[7] ~= '') then
  return { 'invalid', "Workflow '" .. wf .. "' is debounced (WorkflowOptions.Debounce): its runs start when the debounce period ends, so an emit cannot set RunAt or Delay." }
end
local key = ARGV[8]
if key ~= '' then
  local existing = redis.call('GET', k_idem(wf, key))
  if existing then return { 'exists', existing } end
end
local run = k_run(id)
if redis.call('EXISTS', run) == 1 then return { 'exists', id } end
local priority, fkey = ARGV[13] ~= '' and ARGV[13] or '0', ARGV[14]

local now = now_ms()
if debounce then
  local folded = redis.call('GET', k_folded(id)) -- this emit, repeated after it folded
  if folded then return { 'exists', folded } end
  local slot = k_debounce(wf, fkey)
  local pending = redis.call('GET', slot)
  local at = now + debounce
  if pending then
    local pr = redis.call('HMGET', k_run(pending), 'status', 'started_at', 'debounce_first', 'queue', 'idem_folded')
    if pr[1] == 'scheduled' and not pr[2] then
      -- Durability point: the emit folds into the pending run, which takes its input and starts later.
      if max_wait then at = math.min(at, tonumber(pr[3]) + max_wait) end
      redis.call('HSET', k_run(pending), 'input', ARGV[3], 'available_at', int(at))
      redis.call('ZADD', k_scheduled(pr[4]), int(at), pending)
      if key ~= '' then
        redis.call('SET', k_idem(wf, key), pending)
        redis.call('HSET', k_run(pending), 'idem_folded', (pr[5] and (pr[5] .. '\n') or '') .. key)
      end
      redis.call('SET', k_folded(id), pending, 'PX', 86400000)
      redis.call('SET', slot, pending, 'PX', int(at - now + 60000))
      return { 'exists', pending }
    end
  end
  if max_wait then at = math.min(at, now + max_wait) end
  create_run(id, wf, ARGV[3], q, max_attempts, at, now, key, ARGV[9], ARGV[10], ARGV[11], ARGV[12], priority, fkey)
  redis.call('HSET', run, 'debounce_first', int(now))
  redis.call('SET', slot, id, 'PX', int(at - now + 60000))
  return { 'created', id }
end

local available = now
if ARGV[6] ~= '' then available = math.max(now, tonumber(ARGV[6])) end
if ARGV[7] ~= '' then available = now + tonumber(ARGV[7]) end
create_run(id, wf, ARGV[3], q, max_attempts, available, now, key, ARGV[9], ARGV[10], ARGV[11], ARGV[12], priority, fkey)
return { 'created', id }
