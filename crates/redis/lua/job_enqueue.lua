-- job_enqueue.lua: stores a batch of jobs of one queue atomically, in order (see enqueue_job;
-- on one server the ids are claimed in the same step).
-- KEYS[1]: the queue's meta hash (the slot). ARGV[1]: the queue prefix (on one server with the
-- global prefix, job_common.lua); ARGV[2..]: 13 arguments per job (its claim number first), as
-- enqueue_job in job_common.lua reads them.
-- Returns {per job: outcome, id, state (flat), FREED (ended claims to free: id, number, ...)}.
local now = now_ms()
local out = {}
for a = 2, #ARGV, 13 do
  local outcome, id, state = enqueue_job(a, now)
  out[#out + 1] = outcome
  out[#out + 1] = id
  out[#out + 1] = state
end
return { out, FREED }
