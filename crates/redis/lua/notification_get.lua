-- notification_get.lua: one live notification.
-- KEYS[1]: the user's index   KEYS[2]: the user's hash (see notification_common.lua)
-- ARGV[1]: notification id
-- Returns {state, JSON}, or {} when there is none.
trim_age(now_ms())
local state = redis.call('HGET', KEYS[2], 's:' .. ARGV[1])
if not state then
  return {}
end
return {state, redis.call('HGET', KEYS[2], 'j:' .. ARGV[1])}
