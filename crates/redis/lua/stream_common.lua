-- stream_common.lua: helpers prepended (after common.lua) to the stream scripts; not an operation.
-- KEYS: none. ARGV: none.

-- A stream's epoch, top offset and max age (ms), creating the meta with `fresh_epoch` when
-- missing. A missing meta means the history is gone (flush, expiry, remove): any publications
-- left are dropped, so a new epoch never carries old offsets. `age_ms` is the meta's lifetime
-- when created here (the namespace default; publish sets its own).
local function stream_meta(meta, entries, fresh_epoch, age_ms)
  local m = redis.call('HMGET', meta, 'e', 'o', 'a')
  if m[1] then
    return m[1], tonumber(m[2]), tonumber(m[3])
  end
  redis.call('DEL', entries)
  redis.call('HSET', meta, 'e', fresh_epoch, 'o', '0', 'a', age_ms)
  redis.call('PEXPIRE', meta, age_ms)
  return fresh_epoch, 0, tonumber(age_ms)
end

-- The offset in a stream entry id `<offset>-0`.
local function entry_offset(id)
  return tonumber(string.match(id, '^(%d+)'))
end

-- The time field of an XRANGE entry {id, {'t', time, 'p', payload}}.
local function entry_time(entry)
  return tonumber(entry[2][2])
end

-- Appends the entry's offset, time and payload to `out`, as strings.
local function push_entry(out, entry)
  out[#out + 1] = int(entry_offset(entry[1]))
  out[#out + 1] = entry[2][2]
  out[#out + 1] = entry[2][4]
end
