-- Shared: `now`, milliseconds on Redis' clock (TIME). Every due time and lease expiry is
-- decided on this one clock, never a host's.
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
