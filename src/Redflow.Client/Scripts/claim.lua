--[[
  claim: leases up to N ready runs of a worker's queues to it (the queues in their priority order: an earlier queue is
  served first, all in one call), round-robin over each queue's workflows,
  higher priorities first, skipping workflows at MaxConcurrency or their rate limit and keys at their cap or rate limit
  (flow control, G13). Before claiming it promotes due scheduled runs, wakes runs whose wait is due, puts back keys
  whose rate window has room again and takes back expired leases it meets, so liveness never waits for the reaper.
  KEYS[1] namespace base
  ARGV[1] queue (the first)
  ARGV[2] how many runs at most
  ARGV[3] worker id (node)
  ARGV[4] lease ms
  ARGV[5] request id: a repeated claim with the same id returns the same answer
  ARGV[6] abandon after this many lease expiries with no progress
  ARGV[7..] the worker's other queues, in priority order after ARGV[1]
  Returns a list of leased runs (leased_entry in _lib.lua: id, token, lease deadline, workflow, input, attempt,
  max attempts, resumes, queue, steps, traceparent, created at)
  Uses: k_claim, K_WORKERS_SEEN, now_ms, int, wake_due, promote_due, reclaim_expired, unpark_due, claim_from (_lib.lua)
]]
local max, worker, lease_ms, req = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5]
local prior = redis.call('GET', k_claim(req))
if prior then return cjson.decode(prior) end
local queues = { ARGV[1] }
for i = 7, #ARGV do queues[#queues + 1] = ARGV[i] end

local now = now_ms()
redis.call('ZADD', K_WORKERS_SEEN, int(now), worker) -- alive: lease expiries of its runs are hiccups, not deaths
for _, q in ipairs(queues) do promote_due(q, now, 100) end
wake_due(now, 100)
for _, q in ipairs(queues) do
  unpark_due(q, now, 100)
  reclaim_expired(q, now, 20, tonumber(ARGV[6]))
end

local out = {}
for _, q in ipairs(queues) do
  if #out >= max then break end
  claim_from(q, max - #out, worker, lease_ms, now, out)
end
if #out > 0 then redis.call('SET', k_claim(req), cjson.encode(out), 'PX', 60000) end
return out
