--[[
  Shared library, prepended to every script by ScriptLibrary (C#) before it is loaded.

  KEYS[1] of every script is the namespace base "{prefix}:". The braces are the hash tag: every
  key below lands in one Redis Cluster slot, so scripts may build keys from it.
  The key layout is mirrored in Protocol/Keys.cs (C#, for plain reads); the script test
  The_lua_key_layout_matches_the_key_builder checks the two agree.
  Variable parts come last, or after a part that cannot contain ':' (queue names), so no two keys collide.
]]
local P = KEYS[1]
local function k_run(id) return P .. 'run:' .. id end                    -- hash: the run record
local function k_steps(id) return P .. 'steps:' .. id end                -- hash: step name -> step record JSON
local function k_children(id) return P .. 'children:' .. id end          -- zset: child run ids by creation
local function k_ready(q, wf) return P .. 'ready:' .. q .. ':' .. wf end -- list: queued runs of (queue, workflow)
local function k_ring(q) return P .. 'ring:' .. q end                    -- list: workflows with ready runs on q
local function k_scheduled(q) return P .. 'scheduled:' .. q end          -- zset: run id -> available at (ms)
local function k_leases(q) return P .. 'leases:' .. q end                -- zset: run id -> lease deadline (ms)
local function k_running(wf) return P .. 'running:' .. wf end            -- set: runs of wf holding a concurrency slot
local function k_wf(wf) return P .. 'wf:' .. wf end                      -- hash: workflow meta published by workers
local function k_wf_workers(wf) return P .. 'wfworkers:' .. wf end       -- hash: app -> last seen (ms)
local function k_wf_status(wf, s) return P .. 'wfstatus:' .. s .. ':' .. wf end -- zset: runs of wf in status s, by creation
local function k_wf_runs(wf) return P .. 'wfruns:' .. wf end             -- zset: all runs of wf, by creation
local function k_idem(wf, key) return P .. 'idem:' .. #wf .. ':' .. wf .. ':' .. key end
local function k_claim(req) return P .. 'claim:' .. req end              -- string: a claim's answer, for repeats
local function k_cron(trigger) return P .. 'cron:' .. trigger end        -- string: last instant a cron trigger handled
local function k_cron_paused(trigger) return P .. 'cronpaused:' .. trigger end -- string: when a paused cron trigger was paused (ms)
local function k_attempts(id) return P .. 'attempts:' .. id end          -- list: errors of a run's failed attempts (JSON), oldest first
-- hash of a waiting run: step -> wait JSON {kind, name, key, until}; fields starting with a newline (step names have
-- none) index what it waits on: "\nc\n<child id>", "\ns\n<signal>", "\ne\n<event>\n<key>", each -> step
local function k_waits(id) return P .. 'waits:' .. id end
local function k_signals(id) return P .. 'signals:' .. id end            -- list: a run's buffered signals "<name>\n<payload>", in the order sent
local function k_events(name, key) return P .. 'events:' .. #name .. ':' .. name .. ':' .. key end -- zset: event id -> send order (event_order)
local function k_event(eid) return P .. 'event:' .. eid end              -- hash: an event's name, key, payload, sent_at
local function k_event_waiters(name, key) return P .. 'evwaiters:' .. #name .. ':' .. name .. ':' .. key end -- set: runs waiting on it
local function k_event_idem(name, ikey) return P .. 'evidem:' .. #name .. ':' .. name .. ':' .. ikey end     -- string: event id
local function k_event_triggers(name) return P .. 'evtriggers:' .. name end -- set: workflows one run of which each such event starts
-- Flow control (G13). A run's priority p (a decimal integer) picks its ready list and ring; priority 0 keeps the plain
-- k_ready and k_ring, so a queue without priorities pays nothing. A run with a flow-control key waits in its key's list
-- (k_kready); the workflow's ready list then holds one marker "\n<key>" per key instead of the runs, so keys take
-- turns and a key at its cap or rate limit leaves the list (parked) without holding back other keys.
local function k_ready_at(q, p, wf) if p == '0' then return k_ready(q, wf) end return P .. 'readyp:' .. q .. ':' .. p .. ':' .. wf end
local function k_ring_at(q, p) if p == '0' then return k_ring(q) end return P .. 'ringp:' .. q .. ':' .. p end
local function k_levels(q) return P .. 'levels:' .. q end                -- zset: priorities other than 0 with a ring on q, by -priority
local function k_kready(q, p, wf, key) return P .. 'kready:' .. q .. ':' .. p .. ':' .. #wf .. ':' .. wf .. ':' .. key end -- list: a key's queued runs
local function k_krunning(wf, key) return P .. 'krunning:' .. #wf .. ':' .. wf .. ':' .. key end -- set: a key's running runs (its slots)
local function k_kparked(wf, key) return P .. 'kparked:' .. #wf .. ':' .. wf .. ':' .. key end   -- set: "<q>\n<p>" lists the key's marker left
local function k_wf_parked(wf) return P .. 'wfparked:' .. wf end         -- set: keys of wf parked now (inspection: held-back runs)
local function k_rate(wf, key) return P .. 'rate:' .. #wf .. ':' .. wf .. ':' .. key end -- zset: token -> lease time (ms), the sliding window ('' = the workflow's)
local function k_ratewait(q) return P .. 'ratewait:' .. q end            -- zset: "<p>\n<wf>\n<key>" -> when its rate window has room (ms)
local function k_debounce(wf, key) return P .. 'debounce:' .. #wf .. ':' .. wf .. ':' .. key end -- string: the pending run of a debounce slot
local function k_folded(id) return P .. 'folded:' .. id end              -- string: the pending run an emit with this run id folded into
local K_FINISHED = P .. 'finished'     -- zset: finished run id -> purge at (ms)
local K_ONFAILURE = P .. 'onfailure'   -- zset: run id -> due (ms): OnFailure calls still to make
local K_CANCELS = P .. 'cancels'       -- zset: running run id -> when its cancel was requested (ms)
local K_CANCEL_CHANNEL = P .. 'cancel' -- channel: cancel requested for a running run
local K_WAITS = P .. 'waits'           -- zset: waiting run id -> its earliest wait deadline (a sleep's end, a timeout), ms
local K_EVENT_PURGE = P .. 'eventpurge' -- zset: event id -> purge at (ms)
local K_EVENT_CLOCK = P .. 'eventclock' -- string: the last event's send order
local K_WORKFLOWS = P .. 'workflows'   -- set: registered workflow names
local K_QUEUES = P .. 'queues'         -- set: queues that ever had a run
local K_WORKERS = P .. 'workers'       -- hash: node -> worker info JSON
local K_WORKERS_SEEN = P .. 'workers:seen' -- zset: node -> last heartbeat (ms)
local K_TOKEN = P .. 'token'           -- counter: fencing tokens
local K_COUNTERS = P .. 'counters'     -- hash: engine counters
local K_DOORBELL = P .. 'doorbell'     -- channel: a queue got ready runs
local K_DONE = P .. 'done'             -- channel: a run finished

-- The Redis clock (ms), read once per script call: every transition of one call (each entry of a batch too) happens
-- at the same instant, as Redis itself freezes time for key expiry while a script runs.
local NOW
local function now_ms()
  if not NOW then
    local t = redis.call('TIME')
    NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return NOW
end

-- A whole number as the string Redis stores. Handing redis.call a Lua number makes Redis 7.0 format it with
-- "%.17g", which costs several times more than this; hot paths pass strings.
local function int(n) return string.format('%d', n) end

local TERMINAL = { succeeded = true, failed = true, canceled = true }

-- A batch (batch.lua) sets DEFERRED, and then the engine counters its entries bump and the completion messages they
-- send are gathered and written once at its end (flush_deferred): a batch of n completions costs one HINCRBY per
-- counter and one PUBLISH, not n of each. Any other script writes them at once.
local DEFERRED

-- Adds 1 to engine counter `name`.
local function count(name)
  if DEFERRED then
    DEFERRED.counts[name] = (DEFERRED.counts[name] or 0) + 1
  else
    redis.call('HINCRBY', K_COUNTERS, name, '1')
  end
end

-- Announces on the done channel that run id finished. A message is one run id, or several separated by newlines.
local function announce_done(id)
  if DEFERRED then
    DEFERRED.done[#DEFERRED.done + 1] = id
  else
    redis.call('PUBLISH', K_DONE, id)
  end
end

-- Writes what a batch deferred (the counters, one message for its finished runs).
local function flush_deferred()
  for name, by in pairs(DEFERRED.counts) do redis.call('HINCRBY', K_COUNTERS, name, int(by)) end
  if #DEFERRED.done > 0 then redis.call('PUBLISH', K_DONE, table.concat(DEFERRED.done, '\n')) end
  DEFERRED = nil
end

-- A workflow's retention, concurrency caps and rate limit, read once per script call (no script changes them but
-- register): completing a run and claiming the next one of the same workflow reads its meta once. key_cap and
-- rate_limit are nil when the workflow has none.
local WF_SETTINGS = {}
local function wf_settings(wf)
  local s = WF_SETTINGS[wf]
  if not s then
    local v = redis.call('HMGET', k_wf(wf), 'retention_ms', 'max_concurrency', 'key_cap', 'rate_limit', 'rate_period_ms')
    s = { retention = tonumber(v[1] or '604800000'), cap = tonumber(v[2] or '1'), key_cap = tonumber(v[3] or ''),
      rate_limit = tonumber(v[4] or ''), rate_period = tonumber(v[5] or '') }
    WF_SETTINGS[wf] = s
  end
  return s
end

-- Moves a run between its workflow's status indexes. from may be false for a new run. The indexes are per
-- workflow only: a listing across workflows merges them (RedisStore.Reads.cs), so a transition costs two
-- commands, not four. Running runs have no sorted index: the workflow's running set (k_running, the
-- concurrency slots, written by claim_from and release) is their index.
local function move_status(id, wf, from, to, created)
  if from == to then return end
  if from and from ~= 'running' then redis.call('ZREM', k_wf_status(wf, from), id) end
  if to ~= 'running' then redis.call('ZADD', k_wf_status(wf, to), created, id) end
end

-- The priorities other than 0 with a ring on queue q, highest first (k_levels), read once per script call and kept in
-- step with every write to them (level_added, level_removed): a batch of claims on one queue reads them once.
local LEVELS = {}
local function levels(q)
  local l = LEVELS[q]
  if not l then
    l = redis.call('ZRANGE', k_levels(q), 0, -1)
    LEVELS[q] = l
  end
  return l
end

-- Priority p (not 0) got a ring on queue q.
local function level_added(q, p)
  redis.call('ZADD', k_levels(q), -tonumber(p), p)
  LEVELS[q] = nil
end

-- Priority p's ring on queue q is empty.
local function level_removed(q, p)
  redis.call('ZREM', k_levels(q), p)
  LEVELS[q] = nil
end

-- Appends an entry (a run id, or a key's marker) to the ready list of (queue, priority, workflow). The doorbell rings
-- only when the list was empty (the workflow joins the ring of that priority), not on every push.
local function push_ready(entry, q, wf, front, p)
  local list = k_ready_at(q, p, wf)
  local n
  if front then n = redis.call('LPUSH', list, entry) else n = redis.call('RPUSH', list, entry) end
  if n == 1 then
    if redis.call('RPUSH', k_ring_at(q, p), wf) == 1 and p ~= '0' then level_added(q, p) end
    redis.call('PUBLISH', K_DOORBELL, q)
  end
end

-- Queues a run for claiming: into its ready list, or with a flow-control key into its key's list, whose marker joins the
-- ready list when the key had no queued run and is not parked. p: its priority ('0'), key: its key ('' = none).
local function queue_run(id, q, wf, front, p, key)
  if key == '' then return push_ready(id, q, wf, front, p) end
  local list = k_kready(q, p, wf, key)
  local n
  if front then n = redis.call('LPUSH', list, id) else n = redis.call('RPUSH', list, id) end
  if n == 1 and redis.call('SISMEMBER', k_kparked(wf, key), q .. '\n' .. p) == 0 then push_ready('\n' .. key, q, wf, front, p) end
end

-- A parked key's marker goes back to the ready list of (q, p) (when it still has queued runs there); false if it was
-- not parked there.
local function unpark(q, p, wf, key)
  if redis.call('SREM', k_kparked(wf, key), q .. '\n' .. p) == 0 then return false end
  if redis.call('EXISTS', k_kparked(wf, key)) == 0 then redis.call('SREM', k_wf_parked(wf), key) end
  if redis.call('LLEN', k_kready(q, p, wf, key)) > 0 then
    push_ready('\n' .. key, q, wf, false, p)
    redis.call('PUBLISH', K_DOORBELL, q)
  end
  return true
end

-- Rings the doorbell of queue q if runs of wf wait there (a slot of wf was freed and not used by the caller).
local function ring_if_waiting(q, wf)
  if redis.call('LLEN', k_ready(q, wf)) > 0 or #levels(q) > 0 then redis.call('PUBLISH', K_DOORBELL, q) end
end

-- How many runs of wf hold a concurrency slot (k_running), read once per script call and kept in step by the only
-- writers of that set (release, lease_run): a batch of completions that each claim the next run reads it once.
local RUNNING = {}
local function running_count(wf)
  local n = RUNNING[wf]
  if not n then
    n = redis.call('SCARD', k_running(wf))
    RUNNING[wf] = n
  end
  return n
end

-- Adds d (1 or -1) to the kept count of wf's slots, if it was read.
local function running_changed(wf, d)
  if RUNNING[wf] then RUNNING[wf] = RUNNING[wf] + d end
end

-- Releases a running run's lease and concurrency slot. Its token stays as the last holder's, so a
-- repeated terminal call by that holder is recognised; every write still requires status 'running'.
-- When runs of the workflow wait, the freed slot may unblock runs capped by MaxConcurrency: the doorbell
-- rings. Unless quiet: then the caller rings (ring_if_waiting) if it does not use the slot itself, and this
-- returns whether a slot was freed.
-- fkey: the run's flow-control key ('' or nil = none): its key slot is released too, and the key's parked markers
-- go back to their ready lists (a key held back by its cap may run again; one held back by its rate limit is parked
-- again by the next claim).
local function release(id, q, wf, quiet, fkey)
  redis.call('ZREM', k_leases(q), id)
  local freed = redis.call('SREM', k_running(wf), id) == 1
  if freed then running_changed(wf, -1) end
  if fkey and fkey ~= '' and redis.call('SREM', k_krunning(wf, fkey), id) == 1 then
    for _, m in ipairs(redis.call('SMEMBERS', k_kparked(wf, fkey))) do
      local kq, kp = string.match(m, '^([^\n]*)\n(.*)$')
      unpark(kq, kp, wf, fkey)
    end
  end
  if freed and not quiet then ring_if_waiting(q, wf) end
  return freed
end

-- Puts a run back to queued (now) or scheduled (later). extra: more field/value pairs for the run record,
-- written in the same HSET (a new run's fields, for one). flow: {priority, key} when the caller knows them (a new
-- run), else they are read from the record.
local function requeue(id, q, wf, from, created, available, now, front, extra, flow)
  if available > now then
    redis.call('HSET', k_run(id), 'status', 'scheduled', 'available_at', int(available), unpack(extra or {}))
    redis.call('ZADD', k_scheduled(q), int(available), id)
    move_status(id, wf, from, 'scheduled', created)
  else
    flow = flow or redis.call('HMGET', k_run(id), 'priority', 'fkey')
    redis.call('HSET', k_run(id), 'status', 'queued', 'available_at', int(now), unpack(extra or {}))
    queue_run(id, q, wf, front, flow[1] or '0', flow[2] or '')
    move_status(id, wf, from, 'queued', created)
  end
end

-- The fields of a run record that holder() and finish() read, in this order.
local RUN_FIELDS = { 'status', 'token', 'queue', 'workflow', 'created_at', 'attempt', 'max_attempts',
  'parent_run_id', 'idempotency_key', 'idem_ttl_ms', 'stalls', 'cancel_requested', 'suspect', 'fkey', 'idem_folded' }
-- Named positions in such a read.
local F_STATUS = 1
local F_TOKEN = 2
local F_QUEUE = 3
local F_WORKFLOW = 4
local F_CREATED = 5
local F_ATTEMPT = 6
local F_MAX_ATTEMPTS = 7
local F_PARENT = 8
local F_IDEM_KEY = 9
local F_IDEM_TTL = 10
local F_STALLS = 11
local F_CANCEL = 12
local F_SUSPECT = 13
local F_KEY = 14
local F_IDEM_FOLDED = 15 -- idempotency keys of emits folded into this run by debounce, newline-separated

-- The run made progress (a step recorded, a retry scheduled, a child answered): lease expiries before it no
-- longer count towards abandonment. r: the record's RUN_FIELDS. Writes only when there is something to clear.
local function progressed(id, r)
  if r[F_STALLS] and r[F_STALLS] ~= '0' then redis.call('HSET', k_run(id), 'stalls', '0') end
  if r[F_SUSPECT] then redis.call('HDEL', k_run(id), 'suspect', 'suspect_at') end
end

-- Writes step `name` of run id: body is the record's JSON object without its place and times
-- ({"name":...,"status":...,"attempt":...,"output" or "error":...}); the record gets its seq (its place among the
-- run's steps: kept from `existing`, the step's earlier record as the caller read it, else the next), started_at
-- and finished_at (ms).
local function put_step(id, name, body, started, now, existing)
  local seq = existing and string.match(existing, '^{"seq":(%d+)') or int(redis.call('HLEN', k_steps(id)) + 1)
  redis.call('HSET', k_steps(id), name, '{"seq":' .. seq .. ',"started_at":' .. int(started) .. ',"finished_at":' .. int(now) .. ',' .. string.sub(body, 2))
end

-- Removes a waiting run's waits and their indexes (the event waiter sets, the due-wait index); returns the index
-- fields of the waits hash ("\nc\n<child>", ...), for a caller that must act on them (cancel: the children).
local function clear_waits(id)
  local fields = redis.call('HKEYS', k_waits(id))
  local index = {}
  for _, f in ipairs(fields) do
    if string.byte(f, 1) == 10 then
      index[#index + 1] = f
      local name, key = string.match(f, '^\ne\n([^\n]*)\n(.*)$')
      if name then redis.call('SREM', k_event_waiters(name, key), id) end
    end
  end
  redis.call('DEL', k_waits(id))
  redis.call('ZREM', K_WAITS, id)
  return index
end

-- One of a waiting run's waits is satisfied or timed out: the run goes back to the front of its queue (its waits
-- cleared) and replays, its satisfied waits answered from the record. A run not waiting is left as it is. True if woken.
local function wake(id, now)
  local r = redis.call('HMGET', k_run(id), 'status', 'queue', 'workflow', 'created_at', 'priority', 'fkey')
  if r[1] ~= 'waiting' then return false end
  clear_waits(id)
  redis.call('HINCRBY', k_run(id), 'resumes', 1)
  count('resumed')
  requeue(id, r[2], r[3], 'waiting', tonumber(r[4]), 0, now, true, { 'woken', '1' }, { r[5], r[6] })
  return true
end

-- Requeues up to limit waiting runs whose earliest wait deadline has passed (a sleep's end, a timeout); returns how
-- many. The reaper calls it, and so does every claim, so due waits are woken also while the reaper singleton moves.
local function wake_due(now, limit)
  local woken = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_WAITS, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', K_WAITS, id)
    if wake(id, now) then woken = woken + 1 end
  end
  return woken
end

-- Ends a run: status index, finish time, retention, idempotency key window, completion message,
-- and the parent waiting on it (if any) goes back to its queue to replay.
-- extra: more field/value pairs for the run record, written with the status (the output, for one).
-- r: the record's RUN_FIELDS if the caller read them already (holder), else nil.
local function finish(id, status, now, extra, r)
  local run = k_run(id)
  r = r or redis.call('HMGET', run, unpack(RUN_FIELDS))
  local wf = r[F_WORKFLOW]
  local retention = wf_settings(wf).retention
  redis.call('HSET', run, 'status', status, 'finished_at', int(now), unpack(extra or {}))
  move_status(id, wf, r[F_STATUS], status, r[F_CREATED])
  redis.call('ZADD', K_FINISHED, int(now + retention), id)
  count(status)
  if r[F_IDEM_KEY] and r[F_IDEM_KEY] ~= '' then
    redis.call('PEXPIRE', k_idem(wf, r[F_IDEM_KEY]), tonumber(r[F_IDEM_TTL] or '86400000'))
  end
  for key in string.gmatch(r[F_IDEM_FOLDED] or '', '[^\n]+') do
    redis.call('PEXPIRE', k_idem(wf, key), tonumber(r[F_IDEM_TTL] or '86400000'))
  end
  if r[F_PARENT] and r[F_PARENT] ~= '' and redis.call('HEXISTS', k_waits(r[F_PARENT]), '\nc\n' .. id) == 1 then
    wake(r[F_PARENT], now) -- the parent waits on this child: it replays with the child's outcome
  end
  announce_done(id)
end

-- Fails a run for good with an error JSON. When the workflow has an OnFailure handler, records the
-- pending call, due at on_failure_due: the failing worker makes the call before then; if it dies, any
-- worker with the workflow claims it once due (claim_onfailure).
local function fail_final(id, error_json, now, on_failure_due, r)
  finish(id, 'failed', now, { 'error', error_json }, r)
  if on_failure_due then redis.call('ZADD', K_ONFAILURE, on_failure_due, id) end
end

local function has_on_failure(wf) return redis.call('HGET', k_wf(wf), 'has_on_failure') == '1' end

-- Promotes scheduled runs of queue q that are due.
local function promote_due(q, now, limit)
  local due = redis.call('ZRANGEBYSCORE', k_scheduled(q), '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', k_scheduled(q), id)
    local r = redis.call('HMGET', k_run(id), 'status', 'workflow', 'created_at', 'priority', 'fkey')
    if r[1] == 'scheduled' then requeue(id, q, r[2], 'scheduled', tonumber(r[3]), 0, now, false, nil, { r[4], r[5] }) end
  end
  return #due
end

-- Takes back runs of queue q whose lease expired: requeued at the front (resumes + 1), or failed as abandoned
-- once `abandon_after` leases in a row expired with no progress while their holders died.
-- A lease can lapse without its worker dying: Redis was paused or unreachable past the lease, or a claim's
-- answer came too late. So an expiry is judged only at the run's next expiry, when it is known whether its
-- holder was seen in Redis (renew, claim, heartbeat: workers:seen) after that lease ran out: seen, it was a
-- hiccup (counted in lease_lapses); never seen again, the worker died with the run (a stall). The current
-- expiry is presumed a death only to decide abandonment: a run is failed at its abandon_after-th expiry in a
-- row when every earlier one was a death.
local function reclaim_expired(q, now, limit, abandon_after)
  local expired = redis.call('ZRANGEBYSCORE', k_leases(q), '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(expired) do
    local run = k_run(id)
    local r = redis.call('HMGET', run, 'status', 'workflow', 'created_at', 'worker', 'lease_until', 'stalls', 'suspect', 'suspect_at', 'fkey', 'priority')
    release(id, q, r[2], false, r[9])
    redis.call('HDEL', run, 'token') -- the lost holder is fenced for good, also against "already done" answers
    if r[1] == 'running' then
      count('reaped')
      redis.call('HINCRBY', run, 'resumes', 1)
      local stalls = tonumber(r[6] or '0')
      if r[7] then
        local seen = redis.call('ZSCORE', K_WORKERS_SEEN, r[7])
        if seen and tonumber(seen) > tonumber(r[8] or '0') then
          stalls = 0 -- its holder lived on: a hiccup, not a death; the count starts over
          count('lease_lapses')
        else
          stalls = stalls + 1
        end
      end
      if stalls + 1 >= abandon_after then
        redis.call('HSET', run, 'stalls', int(stalls + 1))
        fail_final(id, cjson.encode({ type = 'Redflow.AbandonedRun',
          message = 'The run was abandoned: its lease expired ' .. (stalls + 1) .. ' times in a row with no step recorded, its workers dying with it.' }),
          now, has_on_failure(r[2]) and now)
      else
        redis.call('HSET', run, 'stalls', int(stalls), 'suspect', r[4] or '', 'suspect_at', r[5] or int(now))
        requeue(id, q, r[2], 'running', tonumber(r[3]), 0, now, true, nil, { r[10], r[9] })
      end
    end
  end
  return #expired
end

-- Creates a run once (queued now, or scheduled for later) and its idempotency key. The caller checked that
-- neither the id nor the key exists. Used by emit and by the cron tick. priority ('0') and fkey ('' = none): flow control.
local function create_run(id, wf, input, q, max_attempts, available, now, key, key_ttl, parent, rerun_of, traceparent, priority, fkey)
  priority, fkey = priority or '0', fkey or ''
  local created = int(now)
  if key ~= '' then redis.call('SET', k_idem(wf, key), id) end
  redis.call('ZADD', k_wf_runs(wf), created, id)
  if parent ~= '' then redis.call('ZADD', k_children(parent), created, id) end
  redis.call('SADD', K_QUEUES, q)
  local fields = { 'id', id, 'workflow', wf, 'queue', q, 'input', input,
    'attempt', '1', 'max_attempts', max_attempts, 'created_at', created, 'resumes', '0', 'stalls', '0',
    'parent_run_id', parent, 'idempotency_key', key, 'idem_ttl_ms', key_ttl, 'rerun_of', rerun_of,
    'traceparent', traceparent or '' }
  if priority ~= '0' then fields[#fields + 1] = 'priority'; fields[#fields + 1] = priority end
  if fkey ~= '' then fields[#fields + 1] = 'fkey'; fields[#fields + 1] = fkey end
  requeue(id, q, wf, false, created, available, now, false, fields, { priority, fkey })
end

-- A new fencing token: the counter, but never below the Redis clock in microseconds. A failover that loses the
-- primary's last writes (asynchronous replication) rolls the counter back; without the floor the new primary would
-- hand out a token again that a worker already holds for a claim it lost, and both would be accepted. The floor
-- keeps tokens increasing across such a failover while the clocks of primary and replica agree to better than the
-- failover takes (cluster-node-timeout) less 100 ms: the counter is moved up to the clock only once it lags more
-- than that, so a busy queue pays one SET about every 100 ms instead of one per claim. Tokens stay decimal integers.
local function next_token(now)
  local t = redis.call('INCR', K_TOKEN)
  local floor = now * 1000
  if t <= floor - 100000 then
    t = floor + 1
    redis.call('SET', K_TOKEN, int(t))
  end
  return int(t)
end

-- A leased run as claim and complete answer it, and their repeats (RedisStore.ParseClaimed reads it by these
-- positions, named in ClaimedField):
--   1 run id           5 input JSON       9 queue
--   2 fencing token    6 attempt         10 {step name, step record JSON, ...}
--   3 lease deadline   7 max attempts    11 W3C traceparent of the emitting code ('' = none)
--   4 workflow         8 resumes         12 created at (ms)
--                                        13 '1' when a satisfied wait requeued it (wake), else ''
local function leased_entry(id, token, deadline, wf, input, attempt, max_attempts, resumes, q, steps, traceparent, created, woken)
  return { id, token, deadline, wf, input, attempt, max_attempts, resumes, q, steps, traceparent or '', created, woken or '' }
end

-- Whether the rate limit of (wf, key) has room for one more lease now ('' key: the workflow's own); nil when it has,
-- else when it will. A sliding window log: the lease times of the last period, oldest dropped first, so at most
-- rate_limit leases fall in any window of rate_period ms (not a window aligned to the clock).
local function rate_full_until(wf, key, s, now)
  local log = k_rate(wf, key)
  redis.call('ZREMRANGEBYSCORE', log, '-inf', int(now - s.rate_period))
  if redis.call('ZCARD', log) < s.rate_limit then return nil end
  local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  return tonumber(oldest[2]) + s.rate_period
end

-- A lease counts against the rate limit of (wf, key): every lease does (a first start, a retry, a resume after a wait).
local function rate_count(wf, key, s, token, now)
  local log = k_rate(wf, key)
  redis.call('ZADD', log, int(now), token)
  redis.call('PEXPIRE', log, int(s.rate_period))
end

-- Leaves a key's marker out of the ready list of (q, p, wf): the key is at its cap (back with release) or its rate limit
-- (back at `until_ms`, unpark_due).
local function park(q, p, wf, key, until_ms)
  redis.call('SADD', k_kparked(wf, key), q .. '\n' .. p)
  redis.call('SADD', k_wf_parked(wf), key)
  if until_ms then redis.call('ZADD', k_ratewait(q), int(until_ms), p .. '\n' .. wf .. '\n' .. key) end
end

-- Keys of queue q parked by their rate limit whose window has room again go back to their ready lists.
local function unpark_due(q, now, limit)
  local due = redis.call('ZRANGEBYSCORE', k_ratewait(q), '-inf', now, 'LIMIT', 0, limit)
  for _, m in ipairs(due) do
    redis.call('ZREM', k_ratewait(q), m)
    local p, wf, key = string.match(m, '^([^\n]*)\n([^\n]*)\n(.*)$')
    unpark(q, p, wf, key)
  end
  return #due
end

-- The next run a ready-list entry stands for, or nil (the key is parked now, or a stale marker of a key with no queued
-- run). A run id stands for itself; a marker "\n<key>" for its key's next run, unless the key is at its cap or rate
-- limit. A marker whose key has more queued runs goes to the back of the list: keys take turns.
local function take_entry(entry, q, p, wf, s, now)
  if string.byte(entry, 1) ~= 10 then return entry, '' end
  local key = string.sub(entry, 2)
  if s.key_cap and redis.call('SCARD', k_krunning(wf, key)) >= s.key_cap then
    park(q, p, wf, key)
    return nil
  end
  if s.rate_limit then
    local full_until = rate_full_until(wf, key, s, now)
    if full_until then
      park(q, p, wf, key, full_until)
      return nil
    end
  end
  local list = k_kready(q, p, wf, key)
  local id = redis.call('LPOP', list)
  if id and redis.call('LLEN', list) > 0 then redis.call('RPUSH', k_ready_at(q, p, wf), entry) end
  return id, key
end

-- Leases a run taken from a ready list: a new fencing token, its slots (the workflow's, and its key's), its rate limit
-- counted; appended to out as leased_entry.
local function lease_run(id, key, q, wf, s, worker, lease_ms, now, out)
  local run = k_run(id)
  local token = next_token(now)
  local deadline = int(now + lease_ms)
  local r = redis.call('HMGET', run, 'created_at', 'started_at', 'input', 'attempt', 'max_attempts', 'resumes', 'traceparent', 'woken')
  redis.call('HSET', run, 'status', 'running', 'token', token, 'worker', worker, 'lease_until', deadline, 'started_at', r[2] or int(now),
    'leased_at', int(now), 'current_step', '') -- the renewals say which step it is in
  if r[8] then redis.call('HDEL', run, 'woken') end
  redis.call('ZADD', k_leases(q), deadline, id)
  if redis.call('SADD', k_running(wf), id) == 1 then running_changed(wf, 1) end
  if key ~= '' then redis.call('SADD', k_krunning(wf, key), id) end
  if s.rate_limit then rate_count(wf, key, s, token, now) end
  move_status(id, wf, 'queued', 'running', r[1])
  count('started')
  -- Steps are recorded only under a lease, so a run never started before has none to read.
  local steps = r[2] and redis.call('HGETALL', k_steps(id)) or {}
  out[#out + 1] = leased_entry(id, token, deadline, wf, r[3], r[4], r[5], r[6], q, steps, r[7], r[1], r[8])
end

-- Leases ready runs of priority p on queue q until out holds `wanted`: round-robin over the ring of that priority,
-- skipping workflows at MaxConcurrency or (for runs without a key) at their rate limit: their runs stay queued, other
-- workflows are not blocked. budget: entries it may look at (a bound on the work of one call); returns what is left.
local function claim_level(q, p, wanted, worker, lease_ms, now, out, budget)
  local ring = k_ring_at(q, p)
  local idle = 0 -- workflows passed over in a row without a claim; a full round of them ends the loop
  while #out < wanted and budget > 0 do
    budget = budget - 1
    local head = redis.call('LRANGE', ring, '0', '1') -- the next workflow, and whether another one follows
    local wf = head[1]
    if not wf then break end
    local s = wf_settings(wf)
    local list = k_ready_at(q, p, wf)
    local blocked = running_count(wf) >= s.cap
    if not blocked and s.rate_limit then
      -- Runs without a key count against the workflow's own rate limit (a marker's key has its own).
      local first = redis.call('LINDEX', list, 0)
      blocked = first and string.byte(first, 1) ~= 10 and rate_full_until(wf, '', s, now) ~= nil
    end
    if blocked then
      idle = idle + 1
      if idle >= redis.call('LLEN', ring) then break end
      redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT') -- capped: leave its runs queued, try the next workflow
    else
      local entry = redis.call('LPOP', list)
      local id, key
      if entry then id, key = take_entry(entry, q, p, wf, s, now) end
      if id then
        lease_run(id, key, q, wf, s, worker, lease_ms, now, out)
        idle = 0
      end
      if redis.call('LLEN', list) == 0 then
        redis.call('LPOP', ring) -- no ready runs left: the workflow leaves the ring
        if p ~= '0' and redis.call('LLEN', ring) == 0 then level_removed(q, p) end
      elseif head[2] then
        redis.call('LMOVE', ring, ring, 'LEFT', 'RIGHT') -- round-robin: the next claim starts at the next workflow
      end
    end
  end
  return budget
end

-- Leases up to max ready runs of queue q to a worker, appending them to out (leased_entry): higher priorities first
-- (each priority has its own ring of workflows; 0 is the plain one), each ring round-robin (claim_level).
local function claim_from(q, max, worker, lease_ms, now, out)
  local wanted = #out + max
  local budget = 1000 + 4 * max -- entries looked at, at most: a full round of a large ring of capped workflows, or parked keys
  local zero_done = false
  for _, p in ipairs(levels(q)) do -- priorities other than 0 with ready runs, highest first
    if #out >= wanted or budget <= 0 then return end
    if not zero_done and tonumber(p) < 0 then
      zero_done = true
      budget = claim_level(q, '0', wanted, worker, lease_ms, now, out, budget)
      if #out >= wanted or budget <= 0 then return end
    end
    budget = claim_level(q, p, wanted, worker, lease_ms, now, out, budget)
  end
  if not zero_done and #out < wanted and budget > 0 then claim_level(q, '0', wanted, worker, lease_ms, now, out, budget) end
end

-- A run leased under token, as claim_from lists it (leased_entry), read back from its record (nil when token no longer
-- holds it): a repeated call answers with the runs the first call leased without storing them twice.
local function leased_run(id, token)
  local r = redis.call('HMGET', k_run(id), 'status', 'token', 'lease_until', 'workflow', 'input', 'attempt',
    'max_attempts', 'resumes', 'queue', 'traceparent', 'created_at')
  if r[1] ~= 'running' or r[2] ~= token then return nil end
  return leased_entry(id, token, r[3], r[4], r[5], r[6], r[7], r[8], r[9], redis.call('HGETALL', k_steps(id)), r[10], r[11])
end

-- Reads the lease holder's view of a run; returns status and whether token holds it.
local function holder(id, token)
  local r = redis.call('HMGET', k_run(id), unpack(RUN_FIELDS))
  return r, (r[F_STATUS] == 'running' and r[F_TOKEN] == token)
end

-- A wait's deadline (ms, or nil: none). The instant step `step` of run id first reached its wait is kept in the run
-- record (wait_at:<step>), so a deadline survives replays: relative_ms (a sleep's duration or a timeout, '' = none)
-- counts from it; until_ms ('' = none) is a SleepUntil's absolute time. Returns the deadline and that first instant.
local function wait_deadline(id, step, relative_ms, until_ms, now)
  local field = 'wait_at:' .. step
  local at = tonumber(redis.call('HGET', k_run(id), field) or '')
  if not at then
    at = now
    redis.call('HSET', k_run(id), field, int(at))
  end
  if until_ms ~= '' then return tonumber(until_ms), at end
  if relative_ms ~= '' then return at + tonumber(relative_ms), at end
  return nil, at
end

-- The first buffered signal `name` of run id (its payload), removed from the buffer when take is true; nil if none.
local function next_signal(id, name, take)
  local head = name .. '\n'
  for _, v in ipairs(redis.call('LRANGE', k_signals(id), 0, -1)) do
    if string.sub(v, 1, #head) == head then
      if take then redis.call('LREM', k_signals(id), 1, v) end
      return string.sub(v, #head + 1)
    end
  end
  return nil
end

-- The run's position in the events of (name, key): the send order of the last one it took, in its record.
local function event_pos_field(name, key) return 'evpos:' .. #name .. ':' .. name .. ':' .. key end

-- The earliest event (name, key) sent after the run was created (created_ms) and after the last one it took:
-- its id and send order, or nil.
local function next_event(id, name, key, created_ms)
  local pos = redis.call('HGET', k_run(id), event_pos_field(name, key))
  local from = pos and ('(' .. pos) or int(created_ms * 1000)
  local e = redis.call('ZRANGEBYSCORE', k_events(name, key), from, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if #e == 0 then return nil end
  return e[1], e[2]
end

-- Whether a wait can move on now (to be taken by wait.lua): a child finished, a sleep or a timeout is due, a signal or an
-- event is there. kind: 'child' | 'sleep' | 'signal' | 'event'; deadline: ms or nil.
local function wait_ready(id, kind, name, key, deadline, created_ms, now)
  if deadline and now >= deadline then return true end
  -- A child that is gone (no record) counts as ready too: wait.lua then answers 'missing'.
  if kind == 'child' then return TERMINAL[redis.call('HGET', k_run(name), 'status') or 'succeeded'] == true end
  if kind == 'signal' then return next_signal(id, name, false) ~= nil end
  if kind == 'event' then return next_event(id, name, key, created_ms) ~= nil end
  return false
end

-- ---- worker transitions that group commit batches (batch.lua); each script of the same name runs one ----------------
-- Each takes its script's ARGV as `a` and returns that script's answer; none raises on a stale or repeated call, so one
-- entry of a batch never fails the others.

-- record_step.lua's body: see its header for a's layout and the answer.
local function record_step_call(a)
  local id, name = a[1], a[3]
  local r, held = holder(id, a[2])
  local existing = redis.call('HGET', k_steps(id), name)
  if existing and string.find(existing, '"status":"succeeded"', 1, true) then return { 'exists', existing } end
  if not held then return { 'fenced', r[F_STATUS] or 'missing' } end
  local now = now_ms()
  put_step(id, name, a[4], now - tonumber(a[5]), now, existing)
  progressed(id, r) -- the abandonment count starts over
  return { 'ok' }
end

-- complete.lua's body: see its header for a's layout and the answer.
local function complete_call(a)
  local id, token, claim_next = a[1], a[2], a[4] == '1'
  local r, held = holder(id, token)
  if not held then
    if r[F_STATUS] == 'succeeded' and r[F_TOKEN] == token then
      local prior = redis.call('HMGET', k_run(id), 'next_run', 'next_token')
      return { 'done', { prior[1] and leased_run(prior[1], prior[2]) or nil } }
    end
    return { 'fenced', r[F_STATUS] or 'missing' }
  end
  local freed = release(id, r[F_QUEUE], r[F_WORKFLOW], true, r[F_KEY])
  local now = now_ms()
  -- The freed slot takes the next ready run first (the release made room under the cap); the run's record
  -- keeps which run that was, for a repeat of this call.
  local next_runs = {}
  if claim_next then
    for i = 7, #a do
      claim_from(a[i], 1, a[6], tonumber(a[5]), now, next_runs)
      if #next_runs > 0 then break end
    end
  end
  local extra = { 'output', a[3] }
  if #next_runs > 0 then
    extra[3], extra[4], extra[5], extra[6] = 'next_run', next_runs[1][1], 'next_token', next_runs[1][2]
  end
  finish(id, 'succeeded', now, extra, r)
  -- A run that succeeded ended with no error: a retried one's earlier errors stay in its attempt history.
  if r[F_ATTEMPT] ~= '1' then redis.call('HDEL', k_run(id), 'error') end
  -- The slot was not used here: if runs of the workflow wait, another worker may take it.
  if freed and #next_runs == 0 then ring_if_waiting(r[F_QUEUE], r[F_WORKFLOW]) end
  return { 'ok', next_runs }
end

-- fail.lua's body: see its header for a's layout and the answer.
local function fail_call(a)
  local id, token = a[1], a[2]
  local r, held = holder(id, token)
  if not held then
    -- A repeat by the same holder: its failure already moved the run on (retry scheduled or failed for good).
    if r[F_TOKEN] == token and (TERMINAL[r[F_STATUS]] or r[F_STATUS] == 'scheduled' or r[F_STATUS] == 'queued') then return { 'done' } end
    return { 'fenced', r[F_STATUS] or 'missing' }
  end
  local now = now_ms()
  local run = k_run(id)
  local step = a[6]
  if step ~= '' then
    local existing = redis.call('HGET', k_steps(id), step)
    if not (existing and string.find(existing, '"status":"succeeded"', 1, true)) then
      put_step(id, step, a[7], now - tonumber(a[8]), now, existing)
    end
  end
  release(id, r[F_QUEUE], r[F_WORKFLOW], false, r[F_KEY])
  local attempt, max_attempts = tonumber(r[F_ATTEMPT]), tonumber(r[F_MAX_ATTEMPTS])
  if a[4] == '1' and attempt < max_attempts then
    redis.call('HSET', run, 'error', a[3], 'attempt', attempt + 1)
    -- The attempt history: when the lease that ran this attempt started (leased_at, written by each claim), when it
    -- failed, on which worker, with which error.
    local held = redis.call('HMGET', run, 'worker', 'leased_at')
    redis.call('RPUSH', k_attempts(id), '{"attempt":' .. attempt .. ',"started_at":' .. (held[2] or int(now)) .. ',"failed_at":' .. int(now) ..
      ',"worker":' .. cjson.encode(held[1] or '') .. ',"error":' .. a[3] .. '}')
    progressed(id, r)
    count('retried')
    local available = now + tonumber(a[5])
    requeue(id, r[F_QUEUE], r[F_WORKFLOW], 'running', tonumber(r[F_CREATED]), available, now, false)
    return { 'retry', attempt + 1, available }
  end
  fail_final(id, a[3], now, has_on_failure(r[F_WORKFLOW]) and now + tonumber(a[9]), r)
  return { 'failed' }
end

-- suspend.lua's body: see its header for a's layout and the answer.
local function suspend_call(a)
  local id, token = a[1], a[2]
  local r, held = holder(id, token)
  if not held then return { 'fenced', r[F_STATUS] or 'missing' } end
  local now = now_ms()
  local created = tonumber(r[F_CREATED])
  local waits, earliest = {}, nil
  for i = 3, #a, 5 do
    local w = { step = a[i], kind = a[i + 1], name = a[i + 2], key = a[i + 3], deadline = tonumber(a[i + 4]) }
    if wait_ready(id, w.kind, w.name, w.key, w.deadline, created, now) then return { 'ready', w.step } end
    if w.deadline and (not earliest or w.deadline < earliest) then earliest = w.deadline end
    waits[#waits + 1] = w
  end
  local wk = k_waits(id)
  redis.call('DEL', wk)
  for _, w in ipairs(waits) do
    redis.call('HSET', wk, w.step, cjson.encode({ kind = w.kind, name = w.name, key = w.key, ['until'] = w.deadline }))
    if w.kind == 'child' then
      redis.call('HSET', wk, '\nc\n' .. w.name, w.step)
    elseif w.kind == 'signal' then
      redis.call('HSET', wk, '\ns\n' .. w.name, w.step)
    elseif w.kind == 'event' then
      redis.call('HSET', wk, '\ne\n' .. w.name .. '\n' .. w.key, w.step)
      redis.call('SADD', k_event_waiters(w.name, w.key), id)
    end
  end
  if earliest then redis.call('ZADD', K_WAITS, int(earliest), id) end
  release(id, r[F_QUEUE], r[F_WORKFLOW], false, r[F_KEY])
  redis.call('HSET', k_run(id), 'status', 'waiting')
  move_status(id, r[F_WORKFLOW], 'running', 'waiting', created)
  count('suspended')
  return { 'waiting' }
end

-- emit.lua's body (batch.lua runs it too: a client's concurrent emits go together): see its header for a's layout.
local function emit_call(a)
  local id, wf = a[1], a[2]
  local meta = redis.call('HMGET', k_wf(wf), 'queue', 'max_attempts', 'debounce_ms', 'debounce_max_ms')
  local q = a[4] ~= '' and a[4] or meta[1]
  local max_attempts = a[5] ~= '' and a[5] or meta[2]
  if not q or not max_attempts then
    local known = redis.call('SMEMBERS', K_WORKFLOWS)
    table.insert(known, 1, 'unknown')
    return known
  end
  local debounce, max_wait = tonumber(meta[3] or ''), tonumber(meta[4] or '')
  if debounce and (a[6] ~= '' or a[7] ~= '') then
    return { 'invalid', "Workflow '" .. wf .. "' is debounced (WorkflowOptions.Debounce): its runs start when the debounce period ends, so an emit cannot set RunAt or Delay." }
  end
  local key = a[8]
  if key ~= '' then
    local existing = redis.call('GET', k_idem(wf, key))
    if existing then return { 'exists', existing } end
  end
  local run = k_run(id)
  if redis.call('EXISTS', run) == 1 then return { 'exists', id } end
  local priority, fkey = a[13] ~= '' and a[13] or '0', a[14]

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
        redis.call('HSET', k_run(pending), 'input', a[3], 'available_at', int(at))
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
    create_run(id, wf, a[3], q, max_attempts, at, now, key, a[9], a[10], a[11], a[12], priority, fkey)
    redis.call('HSET', run, 'debounce_first', int(now))
    redis.call('SET', slot, id, 'PX', int(at - now + 60000))
    return { 'created', id }
  end

  local available = now
  if a[6] ~= '' then available = math.max(now, tonumber(a[6])) end
  if a[7] ~= '' then available = now + tonumber(a[7]) end
  create_run(id, wf, a[3], q, max_attempts, available, now, key, a[9], a[10], a[11], a[12], priority, fkey)
  return { 'created', id }
end
