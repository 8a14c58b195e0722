#!lua
-- ADMIT: may a rate-limited delivery run now? Yes if nothing waits at its gate and its
-- limit's next slot has come (GCRA on the room's clock): the slot is taken. Otherwise
-- the item moves from the worker's held list to the back of the gate, in one step, to be
-- released in order by GATE (lua/gate.lua) when its slot comes.
--   KEYS[1] the limit's next free slot (STRING, ms)   KEYS[2] the limit's gate (LIST)
--   KEYS[3] the worker's held list   KEYS[4] the room's gate lengths (HASH name -> count)
--   KEYS[#KEYS] the room's clock (passed by scripts.Script)
--   ARGV[1] the item   ARGV[2] ms between two slots (the period ÷ the number allowed)
--   ARGV[3] the limit's name (its field in KEYS[4])
-- Returns 1 (run it now), 0 (it waits at the gate) or -1 (no longer held: swept meanwhile).
--#include clock_checked
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if redis.call('LLEN', KEYS[2]) == 0 and slot <= now then
    redis.call('SET', KEYS[1], math.max(slot, now) + tonumber(ARGV[2]))
    return 1
end
if redis.call('LREM', KEYS[3], 1, ARGV[1]) == 0 then return -1 end
redis.call('HSET', KEYS[4], ARGV[3], redis.call('RPUSH', KEYS[2], ARGV[1]))
return 0
