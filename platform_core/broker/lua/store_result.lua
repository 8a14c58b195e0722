#!lua
-- STORE_RESULT: a task's result written in one round trip (Celery's RedisBackend reads
-- the stored result, then sends SET and PUBLISH in a pipeline: two round trips, five
-- commands). As Celery: a stored SUCCESS is never overwritten (a late duplicate must not
-- replace it), otherwise the meta is stored, with its expiry, and published on the key's
-- channel to whoever waits for it.
--   KEYS[1] the result key (celery-task-meta-<task id>)
--   ARGV[1] the result meta, JSON-encoded
--   ARGV[2] its expiry in milliseconds, 0 for none
-- Returns 1 when stored, 0 when a SUCCESS was there already.
local stored = redis.call('GET', KEYS[1])
if stored then
  local decoded, meta = pcall(cjson.decode, stored)
  if decoded and type(meta) == 'table' and meta['status'] == 'SUCCESS' then
    return 0
  end
end
local expires_ms = tonumber(ARGV[2])
if expires_ms > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', expires_ms)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
