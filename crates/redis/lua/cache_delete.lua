-- cache_delete.lua: removes one value and its lease (so a value computed before the delete
-- cannot be stored by that lease after it).
-- KEYS[1]: tag versions; KEYS[2]: keys by name; KEYS[3]: keys by expiry; KEYS[4]: the value's key;
-- KEYS[5]: the key's lease; KEYS[6]: leased keys by name; KEYS[7]: leased keys by expiry
-- ARGV[1]: the cache key
-- Returns 1 if a fresh value was removed, else 0.
local live = cache_read(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1])
cache_drop(KEYS[2], KEYS[3], KEYS[4], ARGV[1])
cache_drop_lease(KEYS[6], KEYS[7], KEYS[5], ARGV[1])
if live then
  return 1
end
return 0
