--[[
  claim: leases up to N ready runs of one queue to a worker, round-robin over the queue's workflows,
  skipping workflows at MaxConcurrency. Before claiming it promotes due scheduled runs and takes back
  expired leases it meets, so liveness never waits for the reaper.
  KEYS[1] namespace base
  ARGV[1] queue
  ARGV[2] how many runs at most
  ARGV[3] worker id (node)
  ARGV[4] lease ms
  ARGV[5] request id: a repeated claim with the same id returns the same answer
  ARGV[6] abandon after this many lease expiries with no progress
  Returns a list of runs, each {id, token, lease deadline ms, workflow, input, attempt, max attempts,
  resumes, {step name, step record JSON, ...}}
]]
local q, max, worker, lease_ms, req = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local prior = redis.call('GET', k_claim(req))
if prior then return cjson.decode(prior) end

local now = now_ms()
promote_due(q, now, 100)
reclaim_expired(q, now, 20, tonumber(ARGV[6]))

local out = {}
local ring = k_ring(q)
local spins = redis.call('LLEN', ring)
while #out < max and spins > 0 do
  local wf = redis.call('LINDEX', ring, 0)
  if not wf then break end
  local cap = tonumber(redis.call('HGET', k_wf(wf), 'max_concurrency') or '1')
  if redis.call('SCARD', k_running(wf)) >= cap then
    redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT') -- capped: leave its runs queued, try the next workflow
    spins = spins - 1
  else
    local id = redis.call('LPOP', k_ready(q, wf))
    if id then
      local run = k_run(id)
      local token = tostring(redis.call('INCR', K_TOKEN))
      local deadline = now + lease_ms
      local r = redis.call('HMGET', run, 'created_at', 'started_at', 'input', 'attempt', 'max_attempts', 'resumes')
      redis.call('HSET', run, 'status', 'running', 'token', token, 'worker', worker, 'lease_until', deadline)
      if not r[2] then redis.call('HSET', run, 'started_at', now) end
      redis.call('ZADD', k_leases(q), deadline, id)
      redis.call('SADD', k_running(wf), id)
      move_status(id, wf, 'queued', 'running', tonumber(r[1]))
      redis.call('HINCRBY', K_COUNTERS, 'started', 1)
      out[#out + 1] = { id, token, tostring(deadline), wf, r[3], r[4], r[5], r[6], redis.call('HGETALL', k_steps(id)) }
    end
    if redis.call('LLEN', k_ready(q, wf)) == 0 then
      redis.call('LPOP', ring) -- no ready runs left: the workflow leaves the ring
      spins = spins - 1
    else
      redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT')
    end
  end
end
if #out > 0 then redis.call('SET', k_claim(req), cjson.encode(out), 'PX', 60000) end
return out
