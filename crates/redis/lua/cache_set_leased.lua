-- cache_set_leased.lua: stores a value if the given token holds the key's live lease, with the
-- tag versions the lease recorded when it was granted, and releases the lease.
-- KEYS[1]: counters; KEYS[2]: keys by name; KEYS[3]: keys by expiry; KEYS[4]: the value's key;
-- KEYS[5]: the key's lease; KEYS[6]: leased keys by name; KEYS[7]: leased keys by expiry
-- ARGV[1]: the cache key; ARGV[2]: the token; ARGV[3]: the value; ARGV[4]: ttl ms;
-- ARGV[5]: stale grace ms
-- Returns 1 if stored, 0 if the token does not hold the lease (nothing changed).
local k = ARGV[1]
local now = now_ms()
local f = redis.call('HGETALL', KEYS[5])
local token, expiry, tags = nil, 0, {}
for i = 1, #f, 2 do
  if f[i] == 't' then
    token = f[i + 1]
  elseif f[i] == 'x' then
    expiry = tonumber(f[i + 1])
  else
    tags[#tags + 1] = string.sub(f[i], 3)
    tags[#tags + 1] = f[i + 1]
  end
end
if not token or expiry <= now or not same_secret(token, ARGV[2]) then
  return 0
end
cache_prune(KEYS[2], KEYS[3], now)
cache_store(KEYS[2], KEYS[3], KEYS[4], k, ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5]), tags, now)
cache_drop_lease(KEYS[6], KEYS[7], KEYS[5], k)
redis.call('HINCRBY', KEYS[1], 'sets', 1)
return 1
