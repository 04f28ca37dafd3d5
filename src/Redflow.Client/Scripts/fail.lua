--[[
  fail: a handler failed. Retries with backoff while attempts remain and the error is retriable,
  else fails the run for good (and records a pending OnFailure call when the workflow has one).
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] error JSON {"type":...,"message":...,"stack_trace":...}
  ARGV[4] '1' retriable, '0' not
  ARGV[5] delay before the next attempt, ms
  ARGV[6] failed step name ('' = none)
  ARGV[7] failed step record body JSON (with ARGV[6])
  ARGV[8] how long the failed step ran, ms
  ARGV[9] lease ms: a pending OnFailure call stays with this worker that long before others may claim it
  Returns {'retry', next attempt, available at ms} | {'failed'} | {'done'} | {'fenced', status}
  Uses: fail_call (_lib.lua)
]]
return fail_call(ARGV)
