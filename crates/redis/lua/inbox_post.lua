-- inbox_post.lua: one member's side of a post: their list entry follows the newest message, and
-- their unread count grows by one unless they sent it or this message id was counted already.
-- KEYS[1]: the user's list hash (conversation -> entry JSON)   KEYS[2]: their totals hash
-- KEYS[3]: the message ids counted in this conversation since their last read
-- ARGV[1]: conversation id   ARGV[2]: message id   ARGV[3]: 1 to count (not the sender), else 0
-- ARGV[4]: preview   ARGV[5]: message time ms   ARGV[6]: most ids remembered in KEYS[3]
-- Returns {unread in the conversation, total unread, total muted unread, counted 0|1}.
local at = tonumber(ARGV[5])
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local e
if raw then
  e = cjson.decode(raw)
else
  e = {p = '', t = at, u = 0, pin = false, mute = false, arch = false}
end
if not e.i or at >= e.t then
  e.i = ARGV[2]
  e.p = ARGV[4]
  e.t = at
end
local counted = 0
if ARGV[3] == '1' and redis.call('SISMEMBER', KEYS[3], ARGV[2]) == 0 then
  if redis.call('SCARD', KEYS[3]) < tonumber(ARGV[6]) then
    redis.call('SADD', KEYS[3], ARGV[2])
  end
  e.u = e.u + 1
  counted = 1
  redis.call('HINCRBY', KEYS[2], e.mute and 'm' or 'u', 1)
end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(e))
local totals = redis.call('HMGET', KEYS[2], 'u', 'm')
return {e.u, tonumber(totals[1]) or 0, tonumber(totals[2]) or 0, counted}
