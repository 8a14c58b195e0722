#!lua
-- RELEASE: a worker stopping cleanly gives its lease up if it holds nothing any more
-- (otherwise the lease expires and SWEEP hands the rest out).
--   KEYS[1] the leases   KEYS[2] lease sources   KEYS[3] lease renewals
--   KEYS[4 ..] the worker's held lists
--   ARGV[1] worker id
-- Returns the number of messages still held.
local left = 0
for k = 4, #KEYS do
    left = left + redis.call('LLEN', KEYS[k])
end
if left == 0 then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
end
return left
