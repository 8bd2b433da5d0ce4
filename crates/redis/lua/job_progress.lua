-- job_progress.lua: records progress on an active job held under a token.
-- KEYS[1]: the job's hash. ARGV[1]: the queue prefix; ARGV[2]: job id; ARGV[3]: token;
-- ARGV[4]: progress (JSON text).
-- Returns 0 done, 1 no such job, 2 not active under this token.
local code = leased(KEYS[1], ARGV[3])
if code ~= 0 then
  return code
end
redis.call('HSET', KEYS[1], 'pg', ARGV[4])
return 0
