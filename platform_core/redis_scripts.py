"""Lua run inside Redis, so one round trip does what kombu does in several.

The ``#!lua`` line makes these "flagged" scripts (Redis >= 7): Redis refuses the
whole script when it is out of memory, before it pops anything, instead of failing
half-way after an item has already left its queue.
"""

# ACK_AND_FETCH: acknowledge the finished deliveries, then move up to ``count`` messages
# from the queues (in priority order) into the unacked index, exactly as kombu's
# QoS.append records them, in one atomic step: there is no moment when a message has
# left its queue without being recorded as delivered (stock BRPOP + ZADD/HSET has one).
#   KEYS[1] unacked index (ZSET tag -> delivery time)   KEYS[2] unacked (HASH tag -> copy)
#   KEYS[3..] queue lists, highest priority first
#   ARGV[1] now   ARGV[2] count   ARGV[3] largest item decoded here
#   ARGV[4] one character per queue key: '1' record its deliveries, '0' do not (a no-ack
#           consumer, which never acknowledges)   ARGV[5..] tags to ack
# Returns a flat list: queue key, item, recorded tag (false when not recorded here: a
# no-ack queue, not a JSON envelope, no delivery tag, too large to decode inside Redis,
# or a tag already in the index, whose record belongs to another delivery).
ACK_AND_FETCH = """#!lua
for i = 5, #ARGV do
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
end
local left = tonumber(ARGV[2])
local largest = tonumber(ARGV[3])
local out = {}
for k = 3, #KEYS do
    while left > 0 do
        local item = redis.call('RPOP', KEYS[k])
        if not item then break end
        local tag = false
        if string.sub(ARGV[4], k - 2, k - 2) == '1' and #item <= largest then
            local ok, envelope = pcall(cjson.decode, item)
            if ok and type(envelope) == 'table' and type(envelope.properties) == 'table' then
                local properties = envelope.properties
                local info = properties.delivery_info
                if type(properties.delivery_tag) == 'string' and type(info) == 'table'
                        and redis.call('HEXISTS', KEYS[2], properties.delivery_tag) == 0 then
                    tag = properties.delivery_tag
                    redis.call('ZADD', KEYS[1], ARGV[1], tag)
                    redis.call('HSET', KEYS[2], tag, '[' .. item .. ',' ..
                        cjson.encode(info.exchange or '') .. ',' ..
                        cjson.encode(info.routing_key or '') .. ']')
                end
            end
        end
        out[#out + 1] = KEYS[k]
        out[#out + 1] = item
        out[#out + 1] = tag
        left = left - 1
    end
    if left == 0 then break end
end
return out
"""
