-- notification_unread.lua: how many live notifications are neither read nor dismissed.
-- KEYS[1]: the user's index   KEYS[2]: the user's hash (see notification_common.lua)
-- ARGV: none. Returns the count.
trim_age(now_ms())
local count = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if is_unread(redis.call('HGET', KEYS[2], 's:' .. id)) then
    count = count + 1
  end
end
return count
