#!lua
-- PARK: put an item in a delayed set, due ARGV[1] ms from now on Redis' clock (the
-- producer sends the delay, not the time: hosts' clocks decide only its length).
--   KEYS[1] the delayed set
--   KEYS[2] (optional) the held list to take the item from: a worker given a message
--           due later than the horizon (e.g. by a plain Celery client) moves it in one step
--   KEYS[#KEYS] the platform's clock (passed by scripts.Script)
--   ARGV[1] delay, ms (a negative delay is due now)   ARGV[2] the item
-- Returns the due time (ms), or -1 if KEYS[2] no longer held the item (its lease was
-- swept meanwhile: someone else has it).
--#include clock_checked
local held = #KEYS == 3 and KEYS[2]
if held and redis.call('LREM', held, 1, ARGV[2]) == 0 then return -1 end
local due = now + math.max(0, tonumber(ARGV[1]))
redis.call('ZADD', KEYS[1], due, ARGV[2])
return due
