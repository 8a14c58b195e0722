#!lua
-- RESTORE: a living worker hands deliveries back (a warm shutdown's reserved messages, a
-- reject with requeue): each item still in its held list goes to the front of its queue,
-- marked redelivered. An item no longer held (its lease was swept meanwhile, so another
-- worker has it) is not pushed again.
--   KEYS     pairs: a held list, the queue it was taken from
--   ARGV     one raw item per pair
-- Returns how many items were handed back.
--#include mark_redelivered
local restored = 0
for i = 1, #ARGV do
    if redis.call('LREM', KEYS[2 * i - 1], 1, ARGV[i]) > 0 then
        redis.call('RPUSH', KEYS[2 * i], mark_redelivered(ARGV[i]))
        restored = restored + 1
    end
end
return restored
