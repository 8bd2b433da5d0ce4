-- job_enqueue.lua: stores a batch of jobs atomically, in order (see enqueue_job).
-- KEYS[1]: the queue-name set. ARGV[1]: the jobs prefix; ARGV[2..]: 12 arguments per job, as
-- enqueue_job in job_common.lua reads them.
-- Returns per job: outcome, id, state (flat).
local now = now_ms()
local out = {}
for a = 2, #ARGV, 12 do
  local outcome, id, state = enqueue_job(a, now)
  out[#out + 1] = outcome
  out[#out + 1] = id
  out[#out + 1] = state
end
return out
