-- job_heartbeat.lua: extends the lease of an active job held under a token.
-- KEYS[1]: the job's hash. ARGV[1]: the queue prefix; ARGV[2]: job id; ARGV[3]: token;
-- ARGV[4]: lease ms ('' = the job's own).
-- Returns {0, new lease end ms}, or {1} no such job, {2} not active under this token.
local code, f = leased(KEYS[1], ARGV[3], 'q', 'l')
if code ~= 0 then
  return { code }
end
local lease_end = now_ms() + (tonumber(ARGV[4]) or tonumber(f[4]))
redis.call('HSET', KEYS[1], 'le', int(lease_end))
redis.call('ZADD', qkey(f[3], 'a'), int(lease_end), ARGV[2])
return { 0, lease_end }
