#!lua
-- ENQUEUE_ONCE: push an item onto its queue only if its occurrence is later than the last
-- one enqueued under its name. Two senders of the same occurrence (two beats around a
-- takeover, or one retrying after a failover) enqueue it once; an older one not at all.
--   KEYS[1] occurrences (HASH name -> last occurrence enqueued, ms)
--   ARGV[1] name   ARGV[2] this occurrence, ms   ARGV[3] the item
--   ARGV[4] the queue list: not a declared key, since Redis' ACL lets a script's declared
--           keys only be ones the caller may read and write, and beat may only push to a
--           queue (broker.acl); LPUSH inside is checked against that push permission.
-- Returns 1 if pushed, 0 if this occurrence (or a later one) was enqueued before.
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if last and last >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('LPUSH', ARGV[4], ARGV[3])
return 1
