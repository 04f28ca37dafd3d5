--[[
  record_step: records a step's result for a run, once, if the caller still holds the lease.
  KEYS[1] namespace base
  ARGV[1] run id
  ARGV[2] fencing token
  ARGV[3] step name
  ARGV[4] step record body, a JSON object built by the worker ({"status":...,"attempt":...,"output":...})
  ARGV[5] how long the step function ran, ms (its start is placed on the Redis clock)
  Returns {'ok'} | {'exists', record} (recorded before: the recorded one wins) | {'fenced', status}
  Uses: record_step_call (_lib.lua)
]]
return record_step_call(ARGV)
