#!lua
-- GATE: release a limit's waiting items, oldest first, each at its own slot: every slot
-- from the limit's next free one up to ARGV[3] ms ahead is taken by one item, which is
-- marked with it (headers[ARGV[5]]: it runs without asking again) and put in the
-- delayed set due at that slot (the promoter moves it to the queue then). Slots further
-- ahead are not taken yet, so a changed limit applies within ARGV[3] ms.
--   KEYS[1] the limit's next free slot (STRING, ms)   KEYS[2] the limit's gate (LIST)
--   KEYS[3] the delayed set the released items wait in
--   KEYS[4] the room's gate lengths (HASH name -> count, for the metrics)
--   KEYS[#KEYS] the room's clock (passed by scripts.Script)
--   ARGV[1] ms between two slots   ARGV[2] the most items released per call
--   ARGV[3] how far ahead slots are taken, ms   ARGV[4] the limit's name (its field)
--   ARGV[5] the header the slot is written in (rate_limits.RATE_SLOT_HEADER)
-- Returns {items released, ms until the next slot is free (-1: the gate is empty)}.
--#include clock_checked
local step = tonumber(ARGV[1])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
local released = 0
while released < tonumber(ARGV[2]) and slot <= now + tonumber(ARGV[3]) do
    local item = redis.call('LPOP', KEYS[2])
    if not item then break end
    local mark = '"' .. ARGV[5] .. '": ' .. string.format('%d', slot)
    local marked = string.gsub(item, '("headers"%s*:%s*{)(%s*)(}?)',
        function(opening, space, closing)
            if closing == '}' then return opening .. mark .. '}' end
            return opening .. mark .. ', ' .. space
        end, 1)
    redis.call('ZADD', KEYS[3], slot, marked)
    slot = slot + step
    released = released + 1
end
if released > 0 then redis.call('SET', KEYS[1], slot) end
local waiting = redis.call('LLEN', KEYS[2])
if waiting == 0 then
    redis.call('HDEL', KEYS[4], ARGV[4])
    return {released, -1}
end
redis.call('HSET', KEYS[4], ARGV[4], waiting)
return {released, slot - now}
