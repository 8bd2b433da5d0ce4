-- message_status.lua: moves one recipient's status of cached messages forward (never back).
-- KEYS[1]: the conversation's message index ZSET   KEYS[2]: its message hash
-- ARGV[1]: receipts key prefix   ARGV[2]: recipient user id   ARGV[3]: rank (2 delivered, 3 read)
-- ARGV[4..]: message ids
-- Returns the ids whose status moved, in input order. The sender's own messages, messages not
-- cached, and ranks not above the recipient's current one are skipped.
local rank = tonumber(ARGV[3])
local age = tonumber(redis.call('HGET', KEYS[2], 'age')) or 86400000
local moved = {}
local seen = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  local sender = redis.call('HGET', KEYS[2], 's:' .. id)
  if sender and sender ~= ARGV[2] and not seen[id] then
    local receipts = ARGV[1] .. id
    local before = tonumber(redis.call('HGET', receipts, ARGV[2])) or 1
    if rank > before then
      redis.call('HSET', receipts, ARGV[2], rank)
      -- A receipt set now outlives its message (created earlier, same max age).
      redis.call('PEXPIRE', receipts, age)
      if before < 2 then
        redis.call('HINCRBY', KEYS[2], 'dc:' .. id, 1)
      end
      if rank == 3 then
        redis.call('HINCRBY', KEYS[2], 'rc:' .. id, 1)
      end
      if rank > (tonumber(redis.call('HGET', KEYS[2], 'x:' .. id)) or 1) then
        redis.call('HSET', KEYS[2], 'x:' .. id, rank)
      end
      seen[id] = true
      moved[#moved + 1] = id
    end
  end
end
return moved
