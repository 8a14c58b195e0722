-- Shared: `now`, milliseconds on the platform's clock: Redis' TIME plus the offset the
-- clock hash (KEYS[#KEYS], keys.CLOCK; scripts.Script passes it last) holds. The offset
-- is 0 until a failover puts the platform on a host whose clock differs (clock_checked).
-- For FETCH: its one use of `now` (its own lease's expiry) heals itself, since a lease
-- that looks expired makes the worker renew it through a checked script.
local CLOCK = KEYS[#KEYS]
local host_time = redis.call('TIME')
local now = tonumber(host_time[1]) * 1000 + math.floor(tonumber(host_time[2]) / 1000)
    + (tonumber(redis.call('HGET', CLOCK, 'offset')) or 0)
