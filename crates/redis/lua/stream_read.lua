-- stream_read.lua: the publications after a position, if they are all still retained.
-- KEYS[1]: the stream's meta hash {e, o, a}
-- KEYS[2]: the stream's publications
-- ARGV[1]: a fresh epoch, used if the stream has none
-- ARGV[2]: the namespace's max age (ms), the meta's lifetime if created here
-- ARGV[3]: since: epoch
-- ARGV[4]: since: offset
-- ARGV[5]: limit
-- Returns {epoch, top, recovered (1/0), offset1, time1, payload1, offset2, ...}, oldest first.
local now = now_ms()
local epoch, top, max_age = stream_meta(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
local since = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
local lost = {epoch, int(top), '0'}
if ARGV[3] ~= epoch or since > top then
  return lost
end
local out = {epoch, int(top), '1'}
if since == top then
  return out
end
local entries = redis.call('XRANGE', KEYS[2], int(since + 1) .. '-0', '+', 'COUNT', math.max(limit, 1))
-- The next publication must be there and young enough; the ones after it are younger.
if #entries == 0 or entry_offset(entries[1][1]) ~= since + 1 or entry_time(entries[1]) <= now - max_age then
  return lost
end
for i = 1, math.min(#entries, limit) do
  push_entry(out, entries[i])
end
return out
