-- contacts_add.lua: adds contacts unless the user would have more than the maximum.
-- KEYS[1]: the user's contacts (SET)
-- ARGV[1]: most contacts per user   ARGV[2..]: distinct contact user ids
-- Returns the number added, or -1 (nothing changed) when over the maximum.
local new = {}
for i = 2, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then
    new[#new + 1] = ARGV[i]
  end
end
if redis.call('SCARD', KEYS[1]) + #new > tonumber(ARGV[1]) then
  return -1
end
for i = 1, #new, 500 do
  redis.call('SADD', KEYS[1], unpack(new, i, math.min(i + 499, #new)))
end
return #new
