-- contacts_set.lua: replaces a user's contacts.
-- KEYS[1]: the user's contacts (SET)
-- ARGV[1]: ttl (ms, 0 = no expiry)   ARGV[2..]: contact user ids
-- Returns the contacts replaced (an expired set is already gone).
local previous = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 500 do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
local ttl = tonumber(ARGV[1])
if ttl > 0 and #ARGV > 1 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return previous
