--[[
  batch: group commit. Worker transitions of different runs that were ready at the same moment, in one call: each
  entry is the call its own script would make (record_step, complete, fail, suspend; and a client's emits), fenced by its own token and
  answered on its own, in order. A stale, repeated or unknown entry gets the answer its script gives it alone
  ('fenced', 'exists', 'done', ...); it never fails the batch. Entries run one after the other, as separate calls would.
  KEYS[1] namespace base
  ARGV[1..] groups: kind ('emit' | 'record_step' | 'complete' | 'fail' | 'suspend'), n, then the n ARGV of that kind's script
  Engine counters and completion messages are written once, at the end (DEFERRED): one HINCRBY per counter and one
  PUBLISH listing the finished runs, whatever the number of entries; and the clock is read once (now_ms).
  Returns a list with one answer per entry, each what that kind's script returns.
  Uses: DEFERRED, flush_deferred, record_step_call, complete_call, fail_call, suspend_call, emit_call (_lib.lua)
]]
local calls = { emit = emit_call, record_step = record_step_call, complete = complete_call, fail = fail_call, suspend = suspend_call }
DEFERRED = { counts = {}, done = {} }
local out = {}
local i = 1
while i <= #ARGV do
  local call, n = calls[ARGV[i]], tonumber(ARGV[i + 1])
  local a = {}
  for j = 1, n do a[j] = ARGV[i + 1 + j] end
  out[#out + 1] = call and call(a) or { 'unknown', ARGV[i] }
  i = i + 2 + n
end
flush_deferred()
return out
