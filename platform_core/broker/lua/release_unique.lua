#!lua
-- RELEASE_UNIQUE: a finished task gives its uniqueness key up, if it still holds it (the
-- window may have ended and another task taken it since).
--   KEYS[1] the uniqueness key   ARGV[1] the finished task's id
-- Returns 1 if released, 0 if the key was not this task's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
end
return 0
