-- cache_lease.lua: a fresh value, or the lease to compute it (stampede protection).
-- KEYS[1]: tag versions; KEYS[2]: counters; KEYS[3]: keys by name; KEYS[4]: keys by expiry;
-- KEYS[5]: the value's key; KEYS[6]: the key's lease; KEYS[7]: leased keys by name;
-- KEYS[8]: leased keys by expiry
-- ARGV[1]: the cache key; ARGV[2]: the token to grant; ARGV[3]: lease ms; ARGV[4]: '1' to count
-- a hit or miss, '0' not; ARGV[5..]: the tags whose versions the lease records
-- Returns {'hit', value} | {'granted', expiry ms, stale value or false} |
--         {'held', expiry ms, stale value or false}.
local k = ARGV[1]
local value, fresh = cache_lookup(KEYS[1], KEYS[3], KEYS[4], KEYS[5], k)
if value and fresh then
  if ARGV[4] == '1' then
    redis.call('HINCRBY', KEYS[2], 'hits', 1)
  end
  return { 'hit', value }
end
if ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[2], 'misses', 1)
end
local stale = value or false
local now = now_ms()
local held = tonumber(redis.call('HGET', KEYS[6], 'x') or '0')
if held > now then
  return { 'held', held, stale }
end
cache_prune(KEYS[7], KEYS[8], now)
local expiry = now + tonumber(ARGV[3])
local fields = { 't', ARGV[2], 'x', int(expiry) }
for i = 5, #ARGV do
  fields[#fields + 1] = 'g:' .. ARGV[i]
  fields[#fields + 1] = redis.call('HGET', KEYS[1], ARGV[i]) or '0'
end
redis.call('DEL', KEYS[6])
redis.call('HSET', KEYS[6], unpack(fields))
redis.call('PEXPIRE', KEYS[6], ARGV[3])
redis.call('ZADD', KEYS[7], 0, k)
redis.call('ZADD', KEYS[8], int(expiry), k)
return { 'granted', expiry, stale }
