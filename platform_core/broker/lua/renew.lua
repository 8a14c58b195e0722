#!lua
-- RENEW: take or extend a worker's lease.
--   KEYS[1] the leases (ZSET worker id -> expiry ms)
--   KEYS[2] lease sources (HASH worker id -> its queue keys, "\n"-joined)
--   KEYS[3] lease renewals (HASH worker id -> last renewal ms)
--   KEYS[#KEYS] the platform's clock (passed by scripts.Script)
--   ARGV[1] worker id   ARGV[2] lease length, ms   ARGV[3] its queue keys, "\n"-joined
--   ARGV[4] 'new' when the worker takes the lease, 'renew' when it extends it
-- Returns 1 if the lease was still held (or is new), 0 if it had been swept meanwhile
-- (what the worker held was handed to other workers).
--#include clock_checked
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], now)
if held or ARGV[4] == 'new' then return 1 end
return 0
