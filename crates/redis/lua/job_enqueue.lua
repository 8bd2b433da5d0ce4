-- job_enqueue.lua: stores a batch of jobs of one queue atomically, in order (see enqueue_job).
-- KEYS[1]: the queue's meta hash (the slot). ARGV[1]: the queue prefix; ARGV[2..]: 13
-- arguments per job (its claim number first), as enqueue_job in job_common.lua reads them.
-- Returns {per job: outcome, id, state (flat), FREED (ended claims to free: id, number, ...)}.
local now = now_ms()
local out = {}
local freed = {}
for a = 2, #ARGV, 13 do
  local outcome, id, state = enqueue_job(a, now)
  out[#out + 1] = outcome
  out[#out + 1] = id
  out[#out + 1] = state
  if outcome == 'u' then
    -- Its own id (the answer names the holder), with the claim number it held.
    freed[#freed + 1] = ARGV[a + 1]
    freed[#freed + 1] = ARGV[a]
  end
end
return { out, freed }
