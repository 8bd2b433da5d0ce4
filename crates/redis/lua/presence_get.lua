-- presence_get.lua: reads one user's presence (run pipelined, one per user, for bulk queries).
-- KEYS[1]: the user's presence hash        KEYS[2]: the user's live entries (ZSET member -> expiry ms)
-- ARGV: none
-- Returns {fields, live}: the hash without connection info (flat field, value list) and the
-- members of the live entries.
return snapshot(KEYS[1], KEYS[2], now_ms())
