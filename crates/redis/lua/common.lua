-- common.lua: helpers prepended to every script of this crate; not an operation by itself.
-- KEYS: none. ARGV: none.

-- The Redis server's clock in whole milliseconds. Every time the engine uses comes from here,
-- never from a client, so nodes with skewed clocks agree.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- An integer as a decimal string. Lua's own number-to-string conversion keeps only 14
-- significant digits, so never concatenate a number directly.
local function int(x)
  return string.format('%d', x)
end

-- When the session stored at `key` ends (ms): min(last_active + idle_ttl, absolute_expires_at),
-- or nil when there is no such hash. A session is live while now < that time.
local function session_expiry(key)
  local f = redis.call('HMGET', key, 'la', 'it', 'ax')
  if not f[1] then
    return nil
  end
  return math.min(tonumber(f[1]) + tonumber(f[2]), tonumber(f[3]))
end

