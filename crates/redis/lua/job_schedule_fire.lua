-- job_schedule_fire.lua: compare-and-set on a schedule's next tick: if it is still the tick
-- given, enqueues the job, moves the next tick and records the tick as fired.
-- KEYS[1]: definitions; KEYS[2]: next ticks; KEYS[3]: last fired. ARGV[1]: the jobs prefix;
-- ARGV[2]: name; ARGV[3]: tick ms; ARGV[4]: next tick ms ('' = none); ARGV[5..16]: the job,
-- as enqueue_job in job_common.lua reads it.
-- Returns 1 if this call fired the tick, else 0.
local name = ARGV[2]
local current = redis.call('ZSCORE', KEYS[2], name)
if not current or tonumber(current) ~= tonumber(ARGV[3]) or redis.call('HEXISTS', KEYS[1], name) == 0 then
  return 0
end
enqueue_job(5, now_ms())
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], name)
else
  redis.call('ZADD', KEYS[2], ARGV[4], name)
end
redis.call('HSET', KEYS[3], name, ARGV[3])
return 1
