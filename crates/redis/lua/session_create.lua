-- session_create.lua: stores a new session and, in the same step, evicts the user's least
-- recently active sessions beyond the maximum. Index entries of ended sessions are dropped.
-- KEYS[1]: the new session's hash            KEYS[2]: the user's index (ZSET sid -> last_active_ms)
-- ARGV[1]: session key prefix of the user's shard (prefix .. sid = a session key, same slot)
-- ARGV[2]: session id     ARGV[3]: idle ttl (ms)     ARGV[4]: absolute ttl (ms)
-- ARGV[5]: most live sessions per user (0 = unlimited)
-- ARGV[6]: device id whose live sessions this one replaces ('' for none)
-- ARGV[7..]: field, value pairs to store (uid, dev, optional ip and ua, d:<name> data fields)
-- Returns {now, counted_until, {evicted sid, ...}, {replaced sid, ...}}: evicted least recently
-- active first; counted_until is the score to record in the active-sessions set. Returns
-- {-1, 0, {}, {}} and changes nothing when a live session already has the id.
local now = now_ms()
local sid = ARGV[2]
local idle = tonumber(ARGV[3])
local absolute = tonumber(ARGV[4])
local max = tonumber(ARGV[5])

local existing = session_expiry(KEYS[1])
if existing and now < existing then
  return {-1, 0, {}, {}}
end
if existing then
  -- An ended session with this (caller-chosen) id: forget it first.
  local owner = redis.call('HGET', KEYS[1], 'uid')
  redis.call('DEL', KEYS[1])
  if owner then
    redis.call('ZREM', KEYS[2], sid)
  end
end

-- The user's live sessions, least recently active first.
local live = {}
for _, other in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  local key = ARGV[1] .. other
  local expires = session_expiry(key)
  if expires and now < expires then
    live[#live + 1] = other
  else
    redis.call('ZREM', KEYS[2], other)
    if expires then
      redis.call('DEL', key)
    end
  end
end

-- One session per device: the live ones on the device being logged into go first.
local replaced = {}
if ARGV[6] ~= '' then
  local kept = {}
  for _, other in ipairs(live) do
    local dev = cjson.decode(redis.call('HGET', ARGV[1] .. other, 'dev') or '{}')
    if dev.device_id == ARGV[6] then
      redis.call('DEL', ARGV[1] .. other)
      redis.call('ZREM', KEYS[2], other)
      replaced[#replaced + 1] = other
    else
      kept[#kept + 1] = other
    end
  end
  live = kept
end

local evicted = {}
if max > 0 and #live >= max then
  for i = 1, #live - max + 1 do
    redis.call('DEL', ARGV[1] .. live[i])
    redis.call('ZREM', KEYS[2], live[i])
    evicted[#evicted + 1] = live[i]
  end
end

local absolute_at = now + absolute
local expires = math.min(now + idle, absolute_at)
-- The active-sessions set may count a session a little past its end (at most idle / 8), so
-- that touches only need to refresh it once per eighth of the idle TTL.
local counted = math.min(expires + math.floor(idle / 8), absolute_at)
redis.call('HSET', KEYS[1], 'ca', now, 'la', now, 'it', idle, 'ax', absolute_at, 'cg', counted)
for i = 7, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIREAT', KEYS[1], expires)
redis.call('ZADD', KEYS[2], now, sid)
-- The index lives as long as its longest-lived session can.
local ttl = redis.call('PTTL', KEYS[2])
if ttl < 0 or now + ttl < absolute_at then
  redis.call('PEXPIREAT', KEYS[2], absolute_at)
end
return {now, counted, evicted, replaced}
