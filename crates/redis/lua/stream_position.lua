-- stream_position.lua: a stream's epoch and top offset (creating its meta if missing).
-- KEYS[1]: the stream's meta hash {e, o, a}
-- KEYS[2]: the stream's publications
-- ARGV[1]: a fresh epoch, used if the stream has none
-- ARGV[2]: the namespace's max age (ms), the meta's lifetime if created here
-- Returns {epoch, top}.
local epoch, top = stream_meta(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return {epoch, int(top)}
