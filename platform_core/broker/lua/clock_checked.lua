-- Shared: `now` on the platform's clock (see clock.lua), kept continuous across a
-- failover. Lease expiries and due times are written on one Redis host's clock and read
-- on another's after a failover; skew between the two would move every one of them at
-- once (ahead: every lease expires, delayed tasks run early). So the platform's clock is
-- TIME + offset, and the first checked script on a Redis that did not set the offset
-- makes the clock continue from its last reading if that Redis was promoted (a replica
-- that became primary: INFO replication's second_repl_offset is set): the skew and the
-- outage between the two readings are absorbed, up to MAX_JUMP_MS. A larger jump is
-- taken as real elapsed time, counted in the hash ('jumps') and logged by Redis. A
-- Redis restarted on its own host (not promoted) reads the same clock: time that passed
-- while it was down counts. A clock behind the last reading never runs backwards.
-- Every checked call records its reading ('last').
--#include clock
local MAX_JUMP_MS = 30000
local run_id = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local state = redis.call('HMGET', CLOCK, 'run_id', 'last')
local last = tonumber(state[2])
if state[1] ~= run_id then
    local offset = now - (host_time[1] * 1000 + math.floor(tonumber(host_time[2]) / 1000))
    if last then
        local jump = now - last
        local promoted = not string.find(redis.call('INFO', 'replication'),
            'second_repl_offset:-1', 1, true)
        if jump < 0 or (promoted and jump <= MAX_JUMP_MS) then
            offset = offset - jump
            now = last
        elseif promoted then
            redis.call('HINCRBY', CLOCK, 'jumps', 1)
            redis.log(redis.LOG_WARNING, 'platform clock: jumped ' .. jump ..
                ' ms across a change of primary (more than ' .. MAX_JUMP_MS .. ' ms): kept')
        end
    end
    redis.call('HSET', CLOCK, 'run_id', run_id, 'offset', offset)
end
if not last or now > last then redis.call('HSET', CLOCK, 'last', now) end
