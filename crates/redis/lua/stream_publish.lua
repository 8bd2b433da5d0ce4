-- stream_publish.lua: appends one publication to a channel's stream and publishes it to every
-- node's broker, atomically: a publication is live exactly when it is in the stream.
-- KEYS[1]: the stream's meta hash {e, o, a}
-- KEYS[2]: the stream's publications (STREAM, ids <offset>-0, fields t, p)
-- ARGV[1]: a fresh epoch, used if the stream has none
-- ARGV[2]: max_len (0 = keep no history)
-- ARGV[3]: max_age (ms): older publications are dropped, the stream is forgotten this long
--          after its last publication
-- ARGV[4]: the payload (JSON: data, exclude_device, only_devices)
-- ARGV[5]: the pub/sub channel of live publications
-- ARGV[6]: 'PUBLISH', or 'SPUBLISH' on a Cluster (the channel shares the keys' hash tag, so it
--          is published on this shard only, to the brokers subscribed there)
-- Returns {epoch, offset}.
local now = now_ms()
local max_len = tonumber(ARGV[2])
local max_age = tonumber(ARGV[3])
local epoch, top = stream_meta(KEYS[1], KEYS[2], ARGV[1], ARGV[3])
local offset = top + 1
redis.call('HSET', KEYS[1], 'o', int(offset), 'a', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
if max_len > 0 then
  -- A STREAM rather than a LIST: entry ids are the offsets, so a read since an offset is one
  -- XRANGE from that id, and MAXLEN trims exactly by count in the same command.
  redis.call('XADD', KEYS[2], 'MAXLEN', '=', int(max_len), int(offset) .. '-0', 't', int(now), 'p', ARGV[4])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  -- Age: drop expired publications from the oldest end (a few per publish at most, since
  -- they expire in order; reads skip any left).
  for _ = 1, 64 do
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
    if #oldest == 0 or entry_time(oldest[1]) > now - max_age then
      break
    end
    redis.call('XDEL', KEYS[2], oldest[1][1])
  end
else
  redis.call('DEL', KEYS[2])
end
redis.call(ARGV[6] == 'SPUBLISH' and 'SPUBLISH' or 'PUBLISH', ARGV[5], epoch .. ' ' .. int(offset) .. ' ' .. int(now) .. ' ' .. ARGV[4])
return {epoch, int(offset)}
