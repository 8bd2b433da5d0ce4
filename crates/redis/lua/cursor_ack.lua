-- cursor_ack.lua: moves a device's cursor on its user's stream forward.
-- KEYS[1]: the meta hash of the stream user:<id> {e, o, a}
-- KEYS[2]: that stream's publications
-- KEYS[3]: the user's cursors (hash: device id -> "<epoch> <offset>")
-- ARGV[1]: a fresh epoch, used if the stream has none
-- ARGV[2]: the namespace's max age (ms), the meta's lifetime if created here
-- ARGV[3]: device id
-- ARGV[4]: acked epoch
-- ARGV[5]: acked offset
-- ARGV[6]: how long the cursors are kept (ms)
-- Returns {'ok', epoch, offset} (the cursor in force), {'none'} (ignored, no cursor), or
-- {'beyond', top} (the offset is past the stream's top).
local epoch, top = stream_meta(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
local current = redis.call('HGET', KEYS[3], ARGV[3])
local cur_epoch, cur_offset
if current then
  cur_epoch, cur_offset = string.match(current, '^(%S+) (%d+)$')
end
if ARGV[4] ~= epoch then
  if cur_epoch then
    return {'ok', cur_epoch, cur_offset}
  end
  return {'none'}
end
local offset = tonumber(ARGV[5])
if offset > top then
  return {'beyond', int(top)}
end
if cur_epoch == epoch and tonumber(cur_offset) > offset then
  offset = tonumber(cur_offset)
end
redis.call('HSET', KEYS[3], ARGV[3], epoch .. ' ' .. int(offset))
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return {'ok', epoch, int(offset)}
