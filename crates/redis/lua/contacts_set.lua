-- contacts_set.lua: replaces a user's contacts.
-- KEYS[1]: the user's contacts (SET)
-- ARGV[1]: ttl (ms, 0 = no expiry)   ARGV[2..]: contact user ids
-- Returns the contacts replaced (an expired set is already gone).
-- Everything that can fail is checked before the first write: a refused call changes nothing.
local ttl = tonumber(ARGV[1])
if ttl == nil or ttl < 0 or ttl > 9007199254740991 or ttl % 1 ~= 0 then
  return redis.error_reply('ERR contacts ttl must be a whole number of ms below 2^53')
end
local previous = redis.call('SMEMBERS', KEYS[1])
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 500 do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
if ttl > 0 and #ARGV > 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return previous
