-- presence_get.lua: reads one user's presence (run pipelined, one per user, for bulk queries).
-- KEYS[1]: the user's presence hash        KEYS[2]: the user's live entries (ZSET member -> expiry ms)
-- ARGV: none
-- Returns {fields, live, now, off}: the hash without connection info (flat field, value list),
-- the members of the live entries, the server's time and when the last entry ended (ms).
return snapshot(KEYS[1], KEYS[2], now_ms())
