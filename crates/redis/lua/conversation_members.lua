-- conversation_members.lua: adds and removes members in one step, refusing (and changing
-- nothing) when the result would pass the member limit (2 for a direct conversation).
-- KEYS[1]: the conversation's hash (see conversation_put.lua)   KEYS[2]: its member SET
-- ARGV[1]: most members   ARGV[2]: number of users to add (n)
-- ARGV[3 .. 2+n]: users to add   ARGV[3+n ..]: users to remove (removal wins over addition)
-- Returns 0 when there is no such conversation, -1 when over the limit, else 1.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local max = tonumber(ARGV[1])
if redis.call('HGET', KEYS[1], 'k') == 'direct' then
  max = math.min(max, 2)
end
local n_add = tonumber(ARGV[2])
local removing = {}
for i = 3 + n_add, #ARGV do
  removing[ARGV[i]] = true
end
local size = redis.call('SCARD', KEYS[2])
local counted = {}
for i = 3, 2 + n_add do
  local user = ARGV[i]
  if not removing[user] and not counted[user] and redis.call('SISMEMBER', KEYS[2], user) == 0 then
    counted[user] = true
    size = size + 1
  end
end
for user in pairs(removing) do
  if redis.call('SISMEMBER', KEYS[2], user) == 1 then
    size = size - 1
  end
end
if size > max then
  return -1
end
for i = 3, 2 + n_add do
  if not removing[ARGV[i]] then
    redis.call('SADD', KEYS[2], ARGV[i])
  end
end
for user in pairs(removing) do
  redis.call('SREM', KEYS[2], user)
end
redis.call('HSET', KEYS[1], 'u', int(now_ms()))
return 1
