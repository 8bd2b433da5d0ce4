-- notification_mark.lua: sets read or dismissed on some notifications (read, dismiss), clears
-- read on some (unread), or sets read on all of them (read-all), reporting only the real changes.
-- KEYS[1]: the user's index   KEYS[2]: the user's hash (see notification_common.lua)
-- ARGV[1]: 'read' | 'dismiss' | 'unread' | 'read_all'   ARGV[2..]: ids (not for read_all)
-- Returns {id, state, id, state, ...}: each notification whose flag changed, with its
-- new state, in the order given (read_all: newest first).
local now = now_ms()
trim_age(now)
local ids = {}
if ARGV[1] == 'read_all' then
  ids = redis.call('ZREVRANGE', KEYS[1], 0, -1)
else
  for i = 2, #ARGV do
    ids[#ids + 1] = ARGV[i]
  end
end
local dismiss = ARGV[1] == 'dismiss'
local unread = ARGV[1] == 'unread'
local out = {}
for _, id in ipairs(ids) do
  local c, _, r, d = parse_state(redis.call('HGET', KEYS[2], 's:' .. id))
  local changes = c and ((dismiss and d == 0) or (unread and r == 1) or (not dismiss and not unread and r == 0))
  if changes then
    if dismiss then d = 1 elseif unread then r = 0 else r = 1 end
    local state = int(c) .. ' ' .. int(now) .. ' ' .. int(r) .. ' ' .. int(d)
    redis.call('HSET', KEYS[2], 's:' .. id, state)
    out[#out + 1] = id
    out[#out + 1] = state
  end
end
return out
