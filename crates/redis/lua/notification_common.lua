-- notification_common.lua: helpers prepended to the notification scripts; not an operation.
-- KEYS[1]: the user's index (ZSET notification id -> sequence number, creation order)
-- KEYS[2]: the user's hash {q = last sequence number, a = max age ms, j:<id> = the notification
--          as created (JSON, opaque here), s:<id> = state '<created ms> <updated ms> <read> <dismissed>'}

-- A state string's parts as numbers, or nil.
local function parse_state(s)
  if not s then
    return nil
  end
  local c, u, r, d = string.match(s, '^(%d+) (%d+) (%d) (%d)$')
  return tonumber(c), tonumber(u), tonumber(r), tonumber(d)
end

-- Forgets one notification.
local function drop(id)
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], 'j:' .. id, 's:' .. id)
end

-- Drops the notifications older than the retention age, oldest first; creation order is
-- sequence order, so the walk stops at the first one still young enough.
local function trim_age(now)
  local age = tonumber(redis.call('HGET', KEYS[2], 'a'))
  if not age then
    return
  end
  local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
  for _, id in ipairs(ids) do
    local created = parse_state(redis.call('HGET', KEYS[2], 's:' .. id))
    if created and created > now - age then
      return
    end
    drop(id)
  end
end

-- Whether a state string is unread (neither read nor dismissed).
local function is_unread(s)
  local _, _, r, d = parse_state(s)
  return r == 0 and d == 0
end
