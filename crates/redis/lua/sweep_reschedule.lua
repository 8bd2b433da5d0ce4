-- sweep_reschedule.lua: ends the claims of one sweep, making members due again or done.
-- KEYS[1]: the due set (ZSET member -> due ms)   KEYS[2]: the claimed set (ZSET member -> lease end ms)
-- KEYS[3] (optional): an index to drop done members from (presence: users reported online)
-- ARGV: pairs member, at. at >= 0: due again at `at` (ZADD LT, so an earlier time written
-- meanwhile by another call wins). at < 0: done; dropped from KEYS[3] unless another call made
-- the member due again meanwhile (e.g. the user came back online).
-- Returns the number of members handled.
for i = 1, #ARGV, 2 do
  local member = ARGV[i]
  local at = tonumber(ARGV[i + 1])
  redis.call('ZREM', KEYS[2], member)
  if at >= 0 then
    redis.call('ZADD', KEYS[1], 'LT', int(at), member)
  elseif #KEYS >= 3 and not redis.call('ZSCORE', KEYS[1], member) then
    redis.call('ZREM', KEYS[3], member)
  end
end
return #ARGV / 2
