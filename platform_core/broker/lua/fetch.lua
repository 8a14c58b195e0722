#!lua
-- FETCH: store the results the acknowledgements carry and acknowledge the finished
-- deliveries, then move up to ARGV[2] messages from the queues (in the order given:
-- highest priority first) into this worker's held lists.
--   KEYS[1]            the leases (ZSET worker id -> expiry ms)
--   KEYS[2 .. 1+2q]    q pairs: a queue list, this worker's held list for it
--   KEYS[2+2q ..]      one held list per acknowledgement (n, repeats allowed)
--   then               one result key per result (r: celery-task-meta-<task id>)
--   KEYS[#KEYS]            the platform's clock (passed by scripts.Script)
--   ARGV[1]            worker id
--   ARGV[2]            most messages to move
--   ARGV[3]            q characters, one per queue: '1' record the delivery in the held
--                      list (the consumer acknowledges), '0' pop only (no-ack consumer)
--   ARGV[4]            r, the number of results
--   ARGV[5 .. 4+n]     one raw item per acknowledgement, removed from its held list
--   then               r pairs: a result's meta (JSON), its expiry ms (0: none), stored
--                      as lua/result_write.lua says (broker.ack_results)
-- Returns a flat list: queue key, item, recorded (1/0) per message moved.
-- Error "LEASELOST <worker id>" (errors.LeaseLost) when a recording worker's lease has
-- expired: acknowledgements are applied, nothing is fetched until it is renewed.
--#include clock
--#include result_write
local queues = #ARGV[3]
local results = tonumber(ARGV[4])
local acks = #ARGV - 4 - 2 * results
local first_ack = 2 + 2 * queues
for r = 1, results do
    local at = 4 + acks + 2 * r
    store_result(KEYS[first_ack + acks + r - 1], ARGV[at - 1], tonumber(ARGV[at]))
end
for i = 1, acks do
    redis.call('LREM', KEYS[first_ack + i - 1], 1, ARGV[4 + i])
end
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if string.find(ARGV[3], '1', 1, true) and (not expiry or tonumber(expiry) < now) then
    return redis.error_reply('LEASELOST ' .. ARGV[1])
end
local left = tonumber(ARGV[2])
local out = {}
for q = 1, queues do
    local queue, held = KEYS[2 * q], KEYS[2 * q + 1]
    local record = string.sub(ARGV[3], q, q) == '1'
    while left > 0 do
        local item
        if record then
            item = redis.call('LMOVE', queue, held, 'RIGHT', 'LEFT')
        else
            item = redis.call('RPOP', queue)
        end
        if not item then break end
        out[#out + 1] = queue
        out[#out + 1] = item
        out[#out + 1] = record and 1 or 0
        left = left - 1
    end
    if left == 0 then break end
end
return out
