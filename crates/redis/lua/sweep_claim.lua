-- sweep_claim.lua: claims the members whose check is due, so that one node settles each; the
-- claim is a lease, and claims of a node that stopped mid-sweep become due again when it ends.
-- KEYS[1]: the due set (ZSET member -> due ms)   KEYS[2]: the claimed set (ZSET member -> lease end ms)
-- ARGV[1]: lease (ms)   ARGV[2]: most members to claim
-- Returns the claimed members, earliest due first.
local now = now_ms()
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', int(now))
for _, member in ipairs(stale) do
  redis.call('ZADD', KEYS[1], 'LT', int(now), member)
end
if #stale > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', int(now))
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now), 'LIMIT', 0, tonumber(ARGV[2]))
local lease = int(now + tonumber(ARGV[1]))
for _, member in ipairs(due) do
  redis.call('ZREM', KEYS[1], member)
  redis.call('ZADD', KEYS[2], lease, member)
end
return due
