#!lua
-- STAMP_TIME: the beat's tick.
--   KEYS[1] the key to set to now
-- Returns now (ms, Redis' clock).
--#include now_ms
redis.call('SET', KEYS[1], now)
return now
