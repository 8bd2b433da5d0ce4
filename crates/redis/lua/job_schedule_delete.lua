-- job_schedule_delete.lua: removes a schedule and its timing.
-- KEYS[1]: definitions; KEYS[2]: next ticks; KEYS[3]: last fired. ARGV[1]: the jobs prefix;
-- ARGV[2]: name.
-- Returns 1 if it existed, else 0.
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HDEL', KEYS[3], ARGV[2])
return redis.call('HDEL', KEYS[1], ARGV[2])
