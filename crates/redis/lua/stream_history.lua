-- stream_history.lua: the newest retained publications.
-- KEYS[1]: the stream's meta hash {e, o, a}
-- KEYS[2]: the stream's publications
-- ARGV[1]: a fresh epoch, used if the stream has none
-- ARGV[2]: the namespace's max age (ms), the meta's lifetime if created here
-- ARGV[3]: limit
-- Returns {epoch, top, '1', offset1, time1, payload1, ...}, oldest first.
local now = now_ms()
local epoch, top, max_age = stream_meta(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
local entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', tonumber(ARGV[3]))
local out = {epoch, int(top), '1'}
local keep = 0
while keep < #entries and entry_time(entries[keep + 1]) > now - max_age do
  keep = keep + 1
end
for i = keep, 1, -1 do
  push_entry(out, entries[i])
end
return out
