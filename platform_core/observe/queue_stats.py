"""What an operator asks first — how deep, how old, who is working — read from Redis.

One snapshot costs at most three round trips, whatever the queues hold: every read is
O(1) or O(log n) per key (LLEN, LINDEX of the head, ZCARD, the first of a ZSET, a few
small hashes); no KEYS, no SCAN, nothing proportional to a queue's length. The second
round trip reads the held lists of the workers the first one found; the third, when
needed, records a message without a send stamp seen at a queue's head for the first
time.

Ages and lease times are taken on Redis' clock (TIME, in the same round trip), except
a message's send stamp, which is the producer's clock (platform_core.broker.sent_stamp).
"""

import hashlib
from dataclasses import dataclass, field

import redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from platform_core.broker import keys
from platform_core.broker.delays import eta_of
from platform_core.broker.sent_stamp import sent_ms
from platform_core.broker.transport import Channel, priority_keys
from platform_core.config.queues import QUEUES

OTHER = "other"  # counters recorded under a name that is not one of the platform's queues


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


def queue_of(key: str) -> str:
    """The queue a list or held key belongs to (its priority suffix stripped)."""
    return key.split(Channel.sep, 1)[0]


def read_snapshot(client: redis.Redis, queues=QUEUES) -> Snapshot:
    lists = {queue: priority_keys(queue) for queue in queues}
    with client.pipeline(transaction=False) as pipe:
        pipe.time().hget(keys.CLOCK, "offset")  # the platform's clock (lua/clock.lua)
        for per_priority in lists.values():
            for key in per_priority.values():
                pipe.llen(key).lindex(key, -1)
                pipe.zcard(keys.delayed(key)).zrange(keys.delayed(key), 0, 0, withscores=True)
        pipe.zrange(keys.LEASES, 0, -1, withscores=True)
        for name in (
            keys.LEASE_SOURCES,
            keys.LEASE_RENEWED,
            keys.REJECTED,
            keys.REDELIVERED,
            keys.FIRST_SEEN,
        ):
            pipe.hgetall(name)
        pipe.get(keys.BEAT_LEADER).get(keys.BEAT_TICK)
        replies = iter(pipe.execute())
    (seconds, micros), offset = next(replies), next(replies)
    now = seconds * 1000 + micros // 1000 + int(offset or 0)
    stats, heads = {}, {}
    for queue, per_priority in lists.items():
        waiting, delayed, due = {}, 0, []
        for pri, key in per_priority.items():
            waiting[pri], head, in_set, first = (next(replies) for _ in range(4))
            delayed += in_set
            due += [score for _, score in first]
            if head is not None:
                heads[key] = head
        stats[queue] = QueueStats(
            queue,
            waiting,
            oldest_age=None,
            oldest_stamped=True,
            delayed=delayed,
            next_due_in=max(0.0, (min(due) - now) / 1000) if due else None,
        )
    leases = {bytes_to_str(worker): expiry for worker, expiry in next(replies)}
    sources, renewed, rejected, redelivered, first_seen = (
        _text_hash(next(replies)) for _ in range(5)
    )
    leader, tick = next(replies), next(replies)

    _count_by_queue(stats, rejected, redelivered)
    workers = [
        WorkerStats(
            worker,
            alive=expiry >= now,
            renewed_age=(now - int(renewed[worker])) / 1000 if worker in renewed else None,
            in_flight={},
        )
        for worker, expiry in leases.items()
    ]
    round_trips = 1 + _read_held(client, stats, workers, sources)
    round_trips += _age_heads(client, stats, heads, first_seen, now)
    beat = BeatStats(
        leader=bytes_to_str(leader) if leader else None,
        tick_age=(now - int(tick)) / 1000 if tick and leader else None,
    )
    return Snapshot(stats, workers, beat, round_trips)


def _text_hash(raw: dict) -> dict[str, str]:
    return {bytes_to_str(key): bytes_to_str(value) for key, value in raw.items()}


def _count_by_queue(stats, rejected, redelivered) -> None:
    for name, count in rejected.items():
        queue, _, reason = name.rpartition(":")
        target = _stats_for(stats, queue)
        target.rejected[reason] = target.rejected.get(reason, 0) + int(count)
    for key, count in redelivered.items():
        _stats_for(stats, queue_of(key)).redelivered += int(count)


def _stats_for(stats, queue: str) -> QueueStats:
    # Counters recorded under a name that is not a platform queue share one series.
    return stats.get(queue) or stats.setdefault(OTHER, QueueStats(OTHER, {}, None, True))


def _read_held(client, stats, workers, sources) -> int:
    """In-flight counts from the held lists of every worker holding a lease (1 round trip)."""
    by_id = {worker.worker: worker for worker in workers}
    held = [
        (by_id[worker], source)
        for worker, joined in sources.items()
        if worker in by_id
        for source in joined.split("\n")
        if source and queue_of(source) in stats  # the queues this snapshot is about
    ]
    for worker in workers:
        queues = {queue_of(source) for source in sources.get(worker.worker, "").split("\n")}
        for queue in queues & stats.keys():
            if worker.alive:
                stats[queue].consumers += 1
    if not held:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for worker, source in held:
            pipe.llen(keys.held(worker.worker, source))
        counts = pipe.execute()
    for (worker, source), count in zip(held, counts, strict=True):
        queue = queue_of(source)
        worker.in_flight[queue] = worker.in_flight.get(queue, 0) + count
        if queue in stats:
            stats[queue].in_flight += count
    return 1


def _age_heads(client, stats, heads, first_seen, now) -> int:
    """Each queue's oldest age from the messages at the heads of its lists.

    A stamped message waited since it was sent, or since it was due if it had an ETA
    (it sat in the delayed set until then). An unstamped one is aged from when this
    reader first saw it at the head; that is written back (1 round trip, only when a
    head changed).
    """
    seen_now = {}
    for key, raw in heads.items():
        envelope = _envelope(raw)
        since = sent_ms(envelope) if envelope is not None else None
        stamped = since is not None
        if stamped:
            eta = eta_of(envelope)
            since = max(since, int(eta * 1000)) if eta is not None else since
        else:
            identity = _identity(envelope, raw)
            recorded = first_seen.get(key, "").split(" ")
            if len(recorded) == 2 and recorded[0] == identity:
                since = int(recorded[1])
            else:
                since = now
                seen_now[key] = f"{identity} {now}"
        age = max(0.0, (now - since) / 1000)
        queue = stats[queue_of(key)]
        if queue.oldest_age is None or age > queue.oldest_age:
            queue.oldest_age, queue.oldest_stamped = age, stamped
    gone = [key for key in first_seen if key not in heads]
    if not (seen_now or gone):
        return 0
    with client.pipeline(transaction=False) as pipe:
        if seen_now:
            pipe.hset(keys.FIRST_SEEN, mapping=seen_now)
        if gone:
            pipe.hdel(keys.FIRST_SEEN, *gone)
        pipe.execute()
    return 1


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
