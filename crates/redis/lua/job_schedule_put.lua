-- job_schedule_put.lua: stores a schedule (replacing one of that name) with its next tick; the
-- last fired tick is kept.
-- KEYS[1]: definitions; KEYS[2]: next ticks. ARGV[1]: the jobs prefix; ARGV[2]: name;
-- ARGV[3]: definition JSON; ARGV[4]: next tick ms ('' = none).
-- Returns 1 if the schedule is new, else 0.
local created = redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], ARGV[2])
else
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
end
return created
