#!lua
-- CANCEL: record a task's cancellation in its queue's room (on the room's clock), and
-- forget the ones older than the longest a message may wait (they can no longer arrive).
--   KEYS[1] the room's cancellations (ZSET task id -> when cancelled, ms)
--   KEYS[#KEYS] the room's clock (passed by scripts.Script)
--   ARGV[1] task id   ARGV[2] how long a cancellation is kept, ms
-- Returns the time it was recorded (ms), or the earlier one if it was cancelled before.
--#include clock_checked
local before = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
if before then return tonumber(before) end
redis.call('ZADD', KEYS[1], now, ARGV[1])
return now
