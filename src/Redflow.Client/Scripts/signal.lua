--[[
  signal: a signal to one run, buffered with it in the order sent; the next wait of that name takes it (wait.lua).
  A run waiting on that signal is requeued now.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] signal name
  ARGV[3] payload JSON
  Returns 1 when buffered (a scheduled, queued, running or waiting run), 0 for an unknown or finished run (nothing written).
  Uses: k_run, k_waits, k_signals, now_ms, TERMINAL, wake (_lib.lua)
]]
local id, signal = ARGV[1], ARGV[2]
local status = redis.call('HGET', k_run(id), 'status')
if not status or TERMINAL[status] then return 0 end
redis.call('RPUSH', k_signals(id), signal .. '\n' .. ARGV[3])
if status == 'waiting' and redis.call('HEXISTS', k_waits(id), '\ns\n' .. signal) == 1 then wake(id, now_ms()) end
return 1
