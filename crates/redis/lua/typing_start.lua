-- typing_start.lua: marks a user typing in a conversation, throttling start events.
-- KEYS[1]: the conversation's typing entries (ZSET user -> expiry ms)
-- KEYS[2]: the conversation's throttle times (hash user -> last start event ms)
-- ARGV[1]: user id   ARGV[2]: ttl (ms)   ARGV[3]: throttle (ms)
-- Returns {first (1|0), due_at}: due_at > 0 is the conversation's earliest expiry, to record in
-- the due set with ZADD LT: sent when this entry may be the earliest, and with every event (so a
-- lost due-set update heals within a throttle window); 0 otherwise.
local now = now_ms()
local expires = now + tonumber(ARGV[2])
local current = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1]))
local was_typing = current ~= nil and current > now
local earliest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
redis.call('ZADD', KEYS[1], int(expires), ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]))
local first = 0
if not was_typing or not last or now - last >= tonumber(ARGV[3]) then
  first = 1
  redis.call('HSET', KEYS[2], ARGV[1], int(now))
end
-- Both keys outlive the last expiry by 5 minutes for a sweep to report it; without sweeps they
-- still go away.
local keep = expires + 300000
for _, key in ipairs({KEYS[1], KEYS[2]}) do
  local ttl = redis.call('PTTL', key)
  if ttl < 0 or now + ttl < keep then
    redis.call('PEXPIREAT', key, int(keep))
  end
end
local due_at = 0
if first == 1 or not earliest[2] or expires < tonumber(earliest[2]) then
  due_at = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2])
end
return {first, due_at}
