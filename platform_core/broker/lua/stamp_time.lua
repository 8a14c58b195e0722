#!lua
-- STAMP_TIME: the beat's tick.
--   KEYS[1] the key to set to now
--   KEYS[#KEYS] the platform's clock (passed by scripts.Script)
-- Returns now (ms, Redis' clock).
--#include clock_checked
redis.call('SET', KEYS[1], now)
return now
