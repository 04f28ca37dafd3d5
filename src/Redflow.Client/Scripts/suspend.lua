--[[
  suspend: every unfinished call of a run's handler is a wait, and none can move on: the run becomes waiting. Its
  lease, worker slot and concurrency slot are released and its waits recorded; whatever satisfies one of them (a child's
  end, a due deadline, a signal, an event) requeues it (wake in _lib.lua). Checked again here, atomically: if one of the
  waits can move on already (a signal arrived since the worker asked), nothing is written and the worker takes it.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3..] groups of 5: step, kind ('child' | 'sleep' | 'signal' | 'event'), child run id / signal / event name
            ('' for a sleep), event key (''), deadline ms ('' = none), as wait.lua answered them
  Returns {'waiting'} | {'ready', step} (that wait can move on: nothing written) | {'fenced', status}
  Uses: suspend_call (_lib.lua)
]]
return suspend_call(ARGV)
