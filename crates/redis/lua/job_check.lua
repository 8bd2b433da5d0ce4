-- job_check.lua: an enqueue found the id claimed for this queue, not its own. Answers the job's
-- state if it exists here; 'r' when the claim has ended; else ('p') the claim is being created
-- right now or its enqueue crashed: with ARGV[4] = '1' the claim is ended then (an enqueue
-- still holding it is told to claim again), so the caller can free it and claim the id for its
-- own queue.
-- KEYS[1]: the job's hash. ARGV[1]: the queue prefix; ARGV[2]: job id; ARGV[3]: claim number;
-- ARGV[4]: '1' to end a claim without a job.
-- Returns {'i', state}, {'r'} or {'p'}.
local state = redis.call('HGET', KEYS[1], 's')
if state then
  return { 'i', state }
elseif claim_ended(ARGV[2], ARGV[3]) then
  return { 'r' }
elseif ARGV[4] ~= '1' then
  return { 'p' }
end
end_claim(ARGV[2], ARGV[3], now_ms())
return { 'r' }
