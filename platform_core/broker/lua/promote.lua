#!lua
-- PROMOTE: move every due message (Redis' clock) from the delayed sets to the front of
-- their queues (the end consumers take from next), earliest due taken first. Atomic:
-- with many promoters running, each message is moved exactly once.
--   KEYS    pairs: a delayed set, its queue list
--   KEYS[#KEYS] the platform's clock (passed by scripts.Script)
--   ARGV[1] most messages moved per set
-- Returns {messages moved, ms until the next one is due (-1: none waiting)}; a caller
-- that gets back ARGV[1] moved calls again at once.
--#include clock_checked
local limit = tonumber(ARGV[1])
local moved, next_due = 0, -1
for k = 1, #KEYS - 1, 2 do
    local due = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', now, 'LIMIT', 0, limit)
    for i = #due, 1, -1 do
        redis.call('RPUSH', KEYS[k + 1], due[i])
    end
    if #due > 0 then
        redis.call('ZREM', KEYS[k], unpack(due))
        moved = moved + #due
    end
    local first = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
    if first[2] then
        local wait = math.max(0, tonumber(first[2]) - now)
        if next_due < 0 or wait < next_due then next_due = wait end
    end
end
return {moved, next_due}
