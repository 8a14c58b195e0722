#!lua
-- SWEEP: for up to ARGV[1] workers whose lease expired (Redis' clock), move everything
-- they held back to the front of its queue (the end consumers take from next), oldest
-- first, marked redelivered, counted per queue key, and forget the worker. Atomic: with
-- many sweepers, each expired worker is swept exactly once.
--   KEYS[1] the leases   KEYS[2] lease sources   KEYS[3] lease renewals
--   KEYS[4] redelivered counts (HASH queue key -> messages handed back)
--   KEYS[#KEYS] the platform's clock (passed by scripts.Script)
--   ARGV[1] most workers swept per call
--   ARGV[2] the held-list prefix (keys.HELD_PREFIX): which workers died is found here,
--           so their held lists (prefix .. worker id .. ':' .. queue key) cannot be
--           passed in as keys
-- Returns {workers swept, messages handed back, worker ids...}.
--#include clock_checked
--#include mark_redelivered
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local restored = 0
for _, worker in ipairs(dead) do
    local sources = redis.call('HGET', KEYS[2], worker) or ''
    for source in string.gmatch(sources, '[^\n]+') do
        local held = ARGV[2] .. worker .. ':' .. source
        local moved = 0
        while true do
            local item = redis.call('LPOP', held)
            if not item then break end
            redis.call('RPUSH', source, mark_redelivered(item))
            moved = moved + 1
        end
        if moved > 0 then redis.call('HINCRBY', KEYS[4], source, moved) end
        restored = restored + moved
    end
    redis.call('ZREM', KEYS[1], worker)
    redis.call('HDEL', KEYS[2], worker)
    redis.call('HDEL', KEYS[3], worker)
end
local out = {#dead, restored}
for _, worker in ipairs(dead) do out[#out + 1] = worker end
return out
