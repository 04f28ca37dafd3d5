--[[
  await_child: a parent's RunWorkflowAsync step waits on its child (already emitted). When the child has
  finished, the step is answered now (a succeeded child's output is recorded as the step's result). Else
  the parent is suspended: status waiting, lease and concurrency slot released; the child's end requeues it
  (finish in _lib.lua) and the parent replays with completed steps served from the record.
  KEYS[1] namespace base
  ARGV[1] parent run id
  ARGV[2] parent's fencing token
  ARGV[3] step name
  ARGV[4] child run id
  ARGV[5] parent attempt
  ARGV[6] wait timeout ms ('' = none): the deadline is fixed at the first wait of this step and survives replays;
          the reaper requeues a parent still waiting at its deadline, and this script then answers 'timeout'
  Returns {'succeeded', output} | {'failed', error JSON} | {'canceled', reason} | {'waiting'} | {'timeout'}
          | {'fenced', status} | {'missing'}
  Uses: k_run, k_steps, K_WAITS, now_ms, move_status, release, F_STATUS, F_QUEUE, F_WORKFLOW, F_CREATED, progressed, put_step, holder (_lib.lua)
]]
local id, step, child = ARGV[1], ARGV[3], ARGV[4]
local r, held = holder(id, ARGV[2])
if not held then return { 'fenced', r[F_STATUS] or 'missing' } end
local c = redis.call('HMGET', k_run(child), 'status', 'output', 'error', 'cancel_reason')
if not c[1] then return { 'missing' } end
if c[1] == 'succeeded' then
  if not redis.call('HGET', k_steps(id), step) then
    local now = now_ms()
    put_step(id, step, '{"name":' .. cjson.encode(step) .. ',"status":"succeeded","attempt":' .. ARGV[5] ..
      ',"child_run_id":' .. cjson.encode(child) .. ',"output":' .. c[2] .. '}', now, now)
    progressed(id, r)
  end
  return { 'succeeded', c[2] }
end
if c[1] == 'failed' then return { 'failed', c[3] or '{}' } end
if c[1] == 'canceled' then return { 'canceled', c[4] or '' } end
local deadline
if ARGV[6] ~= '' then
  local field = 'wait_deadline:' .. step
  deadline = tonumber(redis.call('HGET', k_run(id), field) or '0')
  if deadline == 0 then
    deadline = now_ms() + tonumber(ARGV[6])
    redis.call('HSET', k_run(id), field, deadline)
  elseif now_ms() >= deadline then
    return { 'timeout' }
  end
  redis.call('ZADD', K_WAITS, deadline, id)
end
release(id, r[F_QUEUE], r[F_WORKFLOW])
redis.call('HSET', k_run(id), 'status', 'waiting', 'waiting_on', child)
move_status(id, r[F_WORKFLOW], 'running', 'waiting', tonumber(r[F_CREATED]))
return { 'waiting' }
