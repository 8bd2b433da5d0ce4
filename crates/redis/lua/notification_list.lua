-- notification_list.lua: a page of a user's notifications, newest first.
-- KEYS[1]: the user's index   KEYS[2]: the user's hash (see notification_common.lua)
-- ARGV[1]: cursor, the sequence number to start below ('' = from the newest)
-- ARGV[2]: limit   ARGV[3]: 1 = unread only
-- Returns {more (1|0), {{seq, id, state, JSON}, ...}}.
trim_age(now_ms())
local max = '+inf'
if ARGV[1] ~= '' then
  max = '(' .. ARGV[1]
end
local limit = tonumber(ARGV[2])
local unread_only = ARGV[3] == '1'
local ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'WITHSCORES')
local out = {}
local more = 0
for i = 1, #ids, 2 do
  local id = ids[i]
  local state = redis.call('HGET', KEYS[2], 's:' .. id)
  if state and (not unread_only or is_unread(state)) then
    if #out == limit then
      more = 1
      break
    end
    out[#out + 1] = {ids[i + 1], id, state, redis.call('HGET', KEYS[2], 'j:' .. id)}
  end
end
return {more, out}
