"""Lua run inside Redis, so one round trip does what kombu does in several, atomically.

The ``#!lua`` line makes these "flagged" scripts (Redis >= 7): Redis refuses the
whole script when it is out of memory, before it pops anything, instead of failing
half-way after an item has already left its queue.

Deliveries are recorded per worker, not per time window (platform_core.broker.leases): a
worker holds a lease (``platform:leases``, ZSET worker id -> expiry in ms of Redis'
clock) and every message it takes is moved, in the same step as the pop, into its own
list ``platform:held:<worker id>:<queue key>``. Acknowledging removes it from there.
When a lease expires, one script moves everything the worker held back to the front
of the queues it came from and marks those deliveries as redelivered.

fence: kombu-redis-held-format (platform_core/config/fences.py): the held lists keep
kombu's Redis envelope byte for byte, and SWEEP marks it redelivered as kombu does.
"""

# Key names, shared by Python and the scripts (passed in as arguments).
LEASES = "platform:leases"  # ZSET worker id -> lease expiry (ms, Redis TIME)
LEASE_SOURCES = "platform:lease_sources"  # HASH worker id -> its queue keys, "\n"-joined
LEASE_RENEWED = "platform:lease_renewed"  # HASH worker id -> its last renewal (ms, Redis TIME)
# HASH queue key -> messages a sweep handed back after their worker's lease expired.
REDELIVERED = "platform:redelivered"
HELD_PREFIX = "platform:held:"  # + worker id + ":" + queue key: LIST of raw items
DELAYED_PREFIX = "platform:delayed:"  # + queue key: ZSET raw item -> due time (ms, Redis TIME)
BEAT_LEADER = "platform:beat:leader"  # the active beat's identity (a redis-py lock token)
BEAT_TICK = "platform:beat:tick"  # the active beat's last tick (ms, Redis TIME)
# HASH queue key -> "<message id> <ms>": when the queue metrics first saw a message
# without a send stamp (from a plain Celery client) at the head of that queue.
FIRST_SEEN = "platform:first_seen"


def held_key(worker_id: str, queue_key: str) -> str:
    return f"{HELD_PREFIX}{worker_id}:{queue_key}"


def delayed_key(queue_key: str) -> str:
    return f"{DELAYED_PREFIX}{queue_key}"


_NOW_MS = """
local HELD = '@HELD@'
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

# Mark an item as delivered again, as kombu does (delivery_info.redelivered = true),
# by editing the JSON text: decoding and encoding it with cjson would turn empty
# arrays into objects. Escaped quotes inside strings cannot match the pattern.
_MARK_REDELIVERED = """
local function mark_redelivered(item)
    local marked, found = string.gsub(item, '("delivery_info"%s*:%s*{)(%s*)(}?)',
        function(opening, space, closing)
            if closing == '}' then return opening .. '"redelivered": true}' end
            return opening .. '"redelivered": true, ' .. space
        end, 1)
    return marked, found
end
"""

# FETCH: acknowledge the finished deliveries, then move up to ``count`` messages from
# the queues (highest priority first) into this worker's held lists.
#   KEYS[1] LEASES   KEYS[2..] queue lists
#   ARGV[1] worker id   ARGV[2] count
#   ARGV[3] one character per queue key: '1' record (consumer acks), '0' do not (no-ack)
#   ARGV[4] n acks   ARGV[5..] n pairs (held list, raw item) to remove
# Returns a flat list: queue key, item, recorded (1/0). An error LEASELOST when this
# worker's lease has expired: nothing is fetched until it is renewed.
FETCH = (
    "#!lua\n"
    + _NOW_MS
    + """
local worker = ARGV[1]
local acks = tonumber(ARGV[4])
for i = 0, acks - 1 do
    redis.call('LREM', ARGV[5 + 2 * i], 1, ARGV[6 + 2 * i])
end
local expiry = redis.call('ZSCORE', KEYS[1], worker)
if string.find(ARGV[3], '1', 1, true) and (not expiry or tonumber(expiry) < now) then
    return redis.error_reply('LEASELOST ' .. worker)
end
local left = tonumber(ARGV[2])
local out = {}
for k = 2, #KEYS do
    local record = string.sub(ARGV[3], k - 1, k - 1) == '1'
    local held = HELD .. worker .. ':' .. KEYS[k]
    while left > 0 do
        local item
        if record then
            item = redis.call('LMOVE', KEYS[k], held, 'RIGHT', 'LEFT')
        else
            item = redis.call('RPOP', KEYS[k])
        end
        if not item then break end
        out[#out + 1] = KEYS[k]
        out[#out + 1] = item
        out[#out + 1] = record and 1 or 0
        left = left - 1
    end
    if left == 0 then break end
end
return out
"""
)

# RENEW: take or extend a lease. KEYS[1] LEASES  KEYS[2] LEASE_SOURCES  KEYS[3] LEASE_RENEWED
#   ARGV[1] worker id  ARGV[2] lease ms  ARGV[3] its queue keys, "\n"-joined
# Returns 1 if the lease was still held (or is new: ARGV[4] == 'new'), 0 if it had
# been swept meanwhile (what it held was handed to other workers).
RENEW = (
    "#!lua\n"
    + _NOW_MS
    + """
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], now)
if held or ARGV[4] == 'new' then return 1 end
return 0
"""
)

# SWEEP: for up to ARGV[1] workers whose lease expired (Redis' clock), move everything
# they held back to the front of its queue (the end consumers take from next), oldest
# first, marked redelivered, counted per queue key, and forget the worker. Atomic:
# with many sweepers, each expired worker is swept exactly once.
#   KEYS[1] LEASES  KEYS[2] LEASE_SOURCES  KEYS[3] LEASE_RENEWED  KEYS[4] REDELIVERED
# Returns {workers swept, messages restored, worker ids...}.
SWEEP = (
    "#!lua\n"
    + _NOW_MS
    + _MARK_REDELIVERED
    + """
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local restored = 0
for _, worker in ipairs(dead) do
    local sources = redis.call('HGET', KEYS[2], worker) or ''
    for source in string.gmatch(sources, '[^\\n]+') do
        local held = HELD .. worker .. ':' .. source
        local moved = 0
        while true do
            local item = redis.call('LPOP', held)
            if not item then break end
            redis.call('RPUSH', source, (mark_redelivered(item)))
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
"""
)

# RELEASE: a worker stopping cleanly gives its lease up if it holds nothing any more
# (otherwise the lease expires and SWEEP hands the rest out). KEYS as RENEW.
#   ARGV[1] worker id.  Returns the number of messages still held.
RELEASE = """#!lua
local HELD = '@HELD@'
local sources = redis.call('HGET', KEYS[2], ARGV[1]) or ''
local left = 0
for source in string.gmatch(sources, '[^\\n]+') do
    left = left + redis.call('LLEN', HELD .. ARGV[1] .. ':' .. source)
end
if left == 0 then
    redis.call('ZREM', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('HDEL', KEYS[3], ARGV[1])
end
return left
"""


# Delays (platform_core.broker.delays): a message due later than the horizon waits in its
# queue's delayed set, scored by its due time on Redis' clock; the producer sends the
# delay, not the time, so the hosts' clocks decide nothing but the delay's length.

# PARK: put an item in a delayed set, due ARGV[1] ms from now on Redis' clock.
#   KEYS[1] delayed set  KEYS[2] (optional) the held list to take the item from: a worker
#   given a message due later than the horizon (e.g. by a plain Celery client) moves it
#   in one step.  ARGV[1] delay ms  ARGV[2] item.
# Returns due ms, or -1 if KEYS[2] no longer held the item (its lease was swept
# meanwhile: someone else has it).
PARK = (
    "#!lua\n"
    + _NOW_MS
    + """
if KEYS[2] and redis.call('LREM', KEYS[2], 1, ARGV[2]) == 0 then return -1 end
local due = now + math.max(0, tonumber(ARGV[1]))
redis.call('ZADD', KEYS[1], due, ARGV[2])
return due
"""
)

# PROMOTE: move every due message (Redis' clock) from the delayed sets to the front of
# their queues (the end consumers take from next), earliest due taken first. Atomic:
# with many promoters running, each message is moved exactly once.
#   KEYS: pairs (delayed set, queue list)  ARGV[1] most messages moved per set
# Returns {messages moved, ms until the next one is due (-1: none waiting)}; a caller
# that gets back ARGV[1] moved from a set calls again at once.
PROMOTE = (
    "#!lua\n"
    + _NOW_MS
    + """
local limit = tonumber(ARGV[1])
local moved, next_due = 0, -1
for k = 1, #KEYS, 2 do
    local due = redis.call('ZRANGEBYSCORE', KEYS[k], '-inf', now, 'LIMIT', 0, limit)
    for i = #due, 1, -1 do
        redis.call('RPUSH', KEYS[k + 1], due[i])
    end
    if #due > 0 then
        redis.call('ZREM', KEYS[k], unpack(due))
        moved = moved + #due
    end
    local first = redis.call('ZRANGE', KEYS[k], 0, 0, 'WITHSCORES')
    if first[2] then
        local wait = math.max(0, tonumber(first[2]) - now)
        if next_due < 0 or wait < next_due then next_due = wait end
    end
end
return {moved, next_due}
"""
)

FETCH, SWEEP, RELEASE = (
    script.replace("@HELD@", HELD_PREFIX) for script in (FETCH, SWEEP, RELEASE)
)

# STAMP_TIME: SET KEYS[1] to now (ms) on Redis' clock (the beat's tick).
STAMP_TIME = (
    "#!lua\n"
    + _NOW_MS
    + """
redis.call('SET', KEYS[1], now)
return now
"""
)
