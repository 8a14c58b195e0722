-- Shared: store_result(key, value, expires_ms), the one result write (lua/store_result.lua
-- on its own, lua/fetch.lua with the acknowledgement). As Celery's RedisBackend: a stored
-- SUCCESS is never overwritten (a late duplicate must not replace it), otherwise the meta
-- is stored, with its expiry, and published on the key's channel to whoever waits for it.
-- Returns 1 when stored, 0 when a SUCCESS was there already.
local function store_result(key, value, expires_ms)
  local stored = redis.call('GET', key)
  if stored then
    local decoded, meta = pcall(cjson.decode, stored)
    if decoded and type(meta) == 'table' and meta['status'] == 'SUCCESS' then
      return 0
    end
  end
  if expires_ms > 0 then
    redis.call('SET', key, value, 'PX', expires_ms)
  else
    redis.call('SET', key, value)
  end
  redis.call('PUBLISH', key, value)
  return 1
end
