#!lua
-- ENQUEUE_UNIQUE: push an item onto its queue unless another task holds its uniqueness
-- key (a task with unique_for: tasks.unique). The key is taken in the same step as the
-- push, so two senders racing leave one message; a sender that loses is told who holds it.
--   KEYS[1] the uniqueness key (keys.Room.unique, in the room of the queue)
--   ARGV[1] this task's id   ARGV[2] the window, ms   ARGV[3] the item
--   ARGV[4] the queue list: not a declared key (as in lua/enqueue_once.lua: a sender may
--           only push to another site's queue; LPUSH inside is checked against that)
-- Returns the id of the task holding the key: ARGV[1] when this one was pushed (also when
-- it already held it: a retry of the same task is sent again, its window kept).
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))
end
redis.call('LPUSH', ARGV[4], ARGV[3])
return ARGV[1]
