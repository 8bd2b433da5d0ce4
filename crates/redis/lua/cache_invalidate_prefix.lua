-- cache_invalidate_prefix.lua: removes every value whose key starts with a prefix, and the leases
-- of those keys. The values' and leases' keys are built from their key prefixes, in the slot of
-- the declared keys.
-- KEYS[1]: tag versions; KEYS[2]: counters; KEYS[3]: keys by name; KEYS[4]: keys by expiry;
-- KEYS[5]: leased keys by name; KEYS[6]: leased keys by expiry
-- ARGV[1]: the namespace's entry key prefix; ARGV[2]: the cache key prefix;
-- ARGV[3]: the namespace's lease key prefix
-- Returns how many fresh values were removed.
-- Cache keys are UTF-8, which never holds byte 0xFF, so it bounds the range from above.
local keys = redis.call('ZRANGEBYLEX', KEYS[3], '[' .. ARGV[2], '(' .. ARGV[2] .. '\255')
local removed = 0
for _, k in ipairs(keys) do
  local ek = ARGV[1] .. k
  if cache_read(KEYS[1], KEYS[3], KEYS[4], ek, k) then
    removed = removed + 1
  end
  cache_drop(KEYS[3], KEYS[4], ek, k)
end
local leased = redis.call('ZRANGEBYLEX', KEYS[5], '[' .. ARGV[2], '(' .. ARGV[2] .. '\255')
for _, k in ipairs(leased) do
  cache_drop_lease(KEYS[5], KEYS[6], ARGV[3] .. k, k)
end
redis.call('HINCRBY', KEYS[2], 'invalidations', 1)
return removed
