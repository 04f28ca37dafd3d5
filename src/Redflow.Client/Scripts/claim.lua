--[[
  claim: leases up to N ready runs of one queue to a worker, round-robin over the queue's workflows,
  higher priorities first, skipping workflows at MaxConcurrency or their rate limit and keys at their cap or rate limit
  (flow control, G13). Before claiming it promotes due scheduled runs, wakes runs whose wait is due, puts back keys
  whose rate window has room again and takes back expired leases it meets, so liveness never waits for the reaper.
  KEYS[1] namespace base
  ARGV[1] queue
  ARGV[2] how many runs at most
  ARGV[3] worker id (node)
  ARGV[4] lease ms
  ARGV[5] request id: a repeated claim with the same id returns the same answer
  ARGV[6] abandon after this many lease expiries with no progress
  Returns a list of leased runs (leased_entry in _lib.lua: id, token, lease deadline, workflow, input, attempt,
  max attempts, resumes, queue, steps, traceparent, created at)
  Uses: k_claim, K_WORKERS_SEEN, now_ms, int, wake_due, promote_due, reclaim_expired, unpark_due, claim_from (_lib.lua)
]]
local q, max, worker, lease_ms, req = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local prior = redis.call('GET', k_claim(req))
if prior then return cjson.decode(prior) end

local now = now_ms()
redis.call('ZADD', K_WORKERS_SEEN, int(now), worker) -- alive: lease expiries of its runs are hiccups, not deaths
promote_due(q, now, 100)
wake_due(now, 100)
unpark_due(q, now, 100)
reclaim_expired(q, now, 20, tonumber(ARGV[6]))

local out = {}
claim_from(q, max, worker, lease_ms, now, out)
if #out > 0 then redis.call('SET', k_claim(req), cjson.encode(out), 'PX', 60000) end
return out
