-- message_common.lua: helpers prepended to the message scripts; not an operation by itself.
-- KEYS: none. ARGV: none.
-- A conversation's cache is an index ZSET (id -> created ms) and one hash holding `cached`,
-- `age` (max age ms) and, per message, s: sender, c: content JSON, t: created ms, e: edited ms,
-- d: deleted flag, x: highest status rank, dc / rc: delivered / read counts. Receipts live in
-- one hash per message: <receipts prefix><id>, recipient -> rank.

local MESSAGE_FIELDS = {'s:', 'c:', 't:', 'e:', 'd:', 'x:', 'dc:', 'rc:'}

-- One cached message as a flat list of strings: {id, sender, content, created, edited (0 =
-- never), deleted (0|1), highest rank, delivered count, read count}, or nil.
local function message_load(hash, id)
  local names = {}
  for i, f in ipairs(MESSAGE_FIELDS) do
    names[i] = f .. id
  end
  local v = redis.call('HMGET', hash, unpack(names))
  if not v[1] then
    return nil
  end
  return {id, v[1], v[2], v[3], v[4] or '0', v[5] or '0', v[6] or '1', v[7] or '0', v[8] or '0'}
end

-- Forgets one message and its receipts.
local function message_forget(index, hash, receipts, id)
  local names = {}
  for i, f in ipairs(MESSAGE_FIELDS) do
    names[i] = f .. id
  end
  redis.call('ZREM', index, id)
  redis.call('HDEL', hash, unpack(names))
  redis.call('DEL', receipts .. id)
end

-- Applies the count bound: at most max_len, the newest by created time. Age is the whole
-- cache's: it expires max_age after its last post or fill (message_touch).
local function message_trim(index, hash, receipts, max_len)
  local extra = redis.call('ZCARD', index) - max_len
  if extra > 0 then
    for _, id in ipairs(redis.call('ZRANGE', index, 0, extra - 1)) do
      message_forget(index, hash, receipts, id)
    end
  end
end

-- Caches one message unless its id is cached; true when added.
local function message_add(index, hash, id, sender, content, created)
  if redis.call('HEXISTS', hash, 's:' .. id) == 1 then
    return false
  end
  redis.call('ZADD', index, created, id)
  redis.call('HSET', hash, 's:' .. id, sender, 'c:' .. id, content, 't:' .. id, int(created))
  return true
end

-- Marks the conversation cached and restarts the cache's lifetime.
local function message_touch(index, hash, max_age)
  redis.call('HSET', hash, 'cached', '1', 'age', max_age)
  redis.call('PEXPIRE', hash, max_age)
  if redis.call('EXISTS', index) == 1 then
    redis.call('PEXPIRE', index, max_age)
  end
end
