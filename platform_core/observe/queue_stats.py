"""What an operator asks first — how deep, how old, who is working — read from Redis.

One snapshot costs at most two round trips, whatever the queues hold: every read is
O(1) or O(log n) per key (LLEN, LINDEX of the head, ZCARD, the first of a ZSET, a few
small hashes of each queue's room); no KEYS, no SCAN, nothing proportional to a queue's
length. The second round trip reads the held lists of the workers the first one found.
It only reads (the metrics user may do nothing else, broker.acl).

Ages and lease times are taken on each room's clock (TIME + its offset, in the same
round trip), except a message's send stamp, which is the producer's clock
(platform_core.broker.sent_stamp).
"""

import hashlib
from dataclasses import dataclass, field

import redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from platform_core.broker import keys
from platform_core.broker.delays import eta_of
from platform_core.broker.sent_stamp import sent_ms
from platform_core.broker.transport import priority_keys
from platform_core.config.queues import QUEUES


@dataclass
class QueueStats:
    queue: str
    waiting: dict[int, int]  # priority step -> messages waiting in its list
    oldest_age: float | None  # seconds the message at the head has waited; None: empty
    oldest_stamped: bool  # False: a plain client's message, aged since first seen
    in_flight: int = 0  # delivered to a worker, not acknowledged
    delayed: int = 0
    next_due_in: float | None = None  # seconds until the first delayed one is due
    consumers: int = 0  # workers with a live lease taking from this queue
    rejected: dict[str, int] = field(default_factory=dict)  # reason -> count
    redelivered: int = 0  # handed back after their worker's lease expired
    cancelled: int = 0  # cancellations kept in its room (tasks.cancellation)
    rate_limited: int = 0  # waiting at a global rate limit's gate (broker.rate_limits)

    @property
    def depth(self) -> int:
        return sum(self.waiting.values())


@dataclass
class WorkerStats:
    worker: str  # lease id: host:pid:random
    alive: bool  # lease not expired
    renewed_age: float | None  # seconds since its last renewal
    in_flight: dict[str, int]  # queue -> messages it holds


@dataclass
class BeatStats:
    leader: str | None  # identity of the beat holding the leader lock
    tick_age: float | None  # seconds since the active beat last ticked


@dataclass
class Snapshot:
    queues: dict[str, QueueStats]
    workers: list[WorkerStats]
    beat: BeatStats
    round_trips: int


def read_snapshot(client: redis.Redis, queues=QUEUES) -> Snapshot:
    lists = {queue: priority_keys(queue) for queue in queues}
    rooms = {queue: keys.Room(queue) for queue in queues}
    with client.pipeline(transaction=False) as pipe:
        pipe.time().hget(keys.BEAT_CLOCK, "offset")
        for queue, per_priority in lists.items():
            room = rooms[queue]
            pipe.hget(room.clock, "offset")  # the room's clock (lua/clock.lua)
            for key in per_priority.values():
                pipe.llen(key).lindex(key, -1)
                pipe.zcard(room.delayed(key)).zrange(room.delayed(key), 0, 0, withscores=True)
            pipe.zrange(room.leases, 0, -1, withscores=True)
            for name in (room.lease_sources, room.lease_renewed, room.rejected, room.redelivered):
                pipe.hgetall(name)
            pipe.zcard(room.cancelled)
            pipe.hgetall(room.gated)  # (the metrics user may HGETALL, not HVALS)
        pipe.get(keys.BEAT_LEADER).get(keys.BEAT_TICK)
        replies = iter(pipe.execute())
    (seconds, micros), beat_offset = next(replies), next(replies)
    host_ms = seconds * 1000 + micros // 1000
    stats, heads, workers, held, now_by_queue = {}, {}, [], [], {}
    for queue, per_priority in lists.items():
        now = now_by_queue[queue] = host_ms + int(next(replies) or 0)
        waiting, delayed, due = {}, 0, []
        for pri, key in per_priority.items():
            waiting[pri], head, in_set, first = (next(replies) for _ in range(4))
            delayed += in_set
            due += [score for _, score in first]
            if head is not None:
                heads[key] = head
        leases = {bytes_to_str(worker): expiry for worker, expiry in next(replies)}
        sources, renewed, rejected, redelivered = (_text_hash(next(replies)) for _ in range(4))
        cancelled, gated = next(replies), next(replies)
        stats[queue] = QueueStats(
            queue,
            waiting,
            oldest_age=None,
            oldest_stamped=True,
            delayed=delayed,
            next_due_in=max(0.0, (min(due) - now) / 1000) if due else None,
            rejected={reason: int(count) for reason, count in rejected.items()},
            redelivered=sum(int(count) for count in redelivered.values()),
            cancelled=cancelled,
            rate_limited=sum(int(count) for count in gated.values()),
        )
        for worker_id, expiry in leases.items():
            worker = WorkerStats(
                worker_id,
                alive=expiry >= now,
                renewed_age=(now - int(renewed[worker_id])) / 1000
                if worker_id in renewed
                else None,
                in_flight={queue: 0},
            )
            workers.append(worker)
            stats[queue].consumers += worker.alive
            joined = sources.get(worker_id, "")
            held += [(worker, source) for source in joined.split("\n") if source]
    leader, tick = next(replies), next(replies)
    round_trips = 1 + _read_held(client, stats, held)
    _age_heads(stats, heads, now_by_queue)
    beat_now = host_ms + int(beat_offset or 0)
    beat = BeatStats(
        leader=bytes_to_str(leader) if leader else None,
        tick_age=(beat_now - int(tick)) / 1000 if tick and leader else None,
    )
    return Snapshot(stats, workers, beat, round_trips)


def _text_hash(raw: dict) -> dict[str, str]:
    return {bytes_to_str(key): bytes_to_str(value) for key, value in raw.items()}


def _read_held(client, stats, held) -> int:
    """In-flight counts from the held lists of every worker holding a lease (1 round trip)."""
    if not held:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for worker, source in held:
            pipe.llen(keys.held(worker.worker, source))
        counts = pipe.execute()
    for (worker, source), count in zip(held, counts, strict=True):
        queue = keys.queue_of(source)
        worker.in_flight[queue] = worker.in_flight.get(queue, 0) + count
        stats[queue].in_flight += count
    return 1


# Messages without a send stamp (a plain Celery client's) at a queue's head: when this
# reader process first saw each there. Kept in memory: the metrics reader writes nothing.
_first_seen: dict[str, tuple[str, int]] = {}


def _age_heads(stats, heads, now_by_queue) -> None:
    """Each queue's oldest age from the messages at the heads of its lists.

    A stamped message waited since it was sent, or since it was due if it had an ETA
    (it sat in the delayed set until then). An unstamped one is aged from when this
    reader first saw it at the head.
    """
    for key in [key for key in _first_seen if key not in heads]:
        del _first_seen[key]
    for key, raw in heads.items():
        queue = keys.queue_of(key)
        now = now_by_queue[queue]
        envelope = _envelope(raw)
        since = sent_ms(envelope) if envelope is not None else None
        stamped = since is not None
        if stamped:
            eta = eta_of(envelope)
            since = max(since, int(eta * 1000)) if eta is not None else since
        else:
            identity = _identity(envelope, raw)
            seen = _first_seen.get(key)
            if seen is not None and seen[0] == identity:
                since = seen[1]
            else:
                since = now
                _first_seen[key] = (identity, now)
        age = max(0.0, (now - since) / 1000)
        if stats[queue].oldest_age is None or age > stats[queue].oldest_age:
            stats[queue].oldest_age, stats[queue].oldest_stamped = age, stamped


def _envelope(raw: bytes) -> dict | None:
    try:
        envelope = loads(bytes_to_str(raw))
    except Exception:  # anything can be pushed onto a list; the worker rejects it
        return None
    return envelope if isinstance(envelope, dict) else None


def _identity(envelope, raw: bytes) -> str:
    """A message's id for the first-seen record: its delivery tag, else a digest."""
    properties = envelope.get("properties") if envelope else None
    tag = properties.get("delivery_tag") if isinstance(properties, dict) else None
    if isinstance(tag, str) and tag and " " not in tag:
        return tag[:64]
    return hashlib.blake2b(raw, digest_size=12).hexdigest()
