-- typing_users.lua: the users typing in a conversation now.
-- KEYS[1]: the conversation's typing entries (ZSET user -> expiry ms)
-- ARGV: none
-- Returns the user ids with a live entry.
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(now_ms()), '+inf')
