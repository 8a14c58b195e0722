#!lua
-- STORE_RESULT: a task's result written in one round trip (Celery's RedisBackend reads
-- the stored result, then sends SET and PUBLISH in a pipeline: two round trips, five
-- commands); lua/result_write.lua says what it keeps.
--   KEYS[1] the result key (celery-task-meta-<task id>)
--   ARGV[1] the result meta, JSON-encoded
--   ARGV[2] its expiry in milliseconds, 0 for none
-- Returns 1 when stored, 0 when a SUCCESS was there already.
--#include result_write
return store_result(KEYS[1], ARGV[1], tonumber(ARGV[2]))
