-- job_schedule_fire.lua: compare-and-set on a schedule's next tick: if it is still the tick
-- given, moves the next tick and records the tick as fired; the caller then enqueues the tick's
-- job (its id derives from the schedule and the tick, so enqueue is idempotent).
-- KEYS[1]: definitions; KEYS[2]: next ticks; KEYS[3]: last fired. ARGV[1]: the jobs prefix;
-- ARGV[2]: name; ARGV[3]: tick ms; ARGV[4]: next tick ms ('' = none).
-- Returns 1 if this call claimed the tick, else 0.
local name = ARGV[2]
local current = redis.call('ZSCORE', KEYS[2], name)
if not current or tonumber(current) ~= tonumber(ARGV[3]) or redis.call('HEXISTS', KEYS[1], name) == 0 then
  return 0
end
if ARGV[4] == '' then
  redis.call('ZREM', KEYS[2], name)
else
  redis.call('ZADD', KEYS[2], ARGV[4], name)
end
redis.call('HSET', KEYS[3], name, ARGV[3])
return 1
