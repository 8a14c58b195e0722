"""Every Redis key the platform keeps beside kombu's own, named once, laid out so Redis
ACL key patterns can give each queue's workers their own keys and nothing else
(platform_core.broker.acl; docs/architecture.md, "Key layout").

kombu's keys are the queues themselves (a list named after the queue, one more per
priority step: ``<queue>\\x06\\x16<step>``), the bindings (``_kombu.binding.*``) and
Celery's results (``celery-task-meta-<id>``). Everything the platform adds starts with
``platform:``:

- ``platform:queue:<queue>:*`` — a queue's room: everything its workers keep (leases,
  held lists, the delayed sets of its priority steps, redelivery and rejection counts,
  attempts, its clock). One ACL pattern per queue, and no worker of another queue needs
  any key in it. A producer sends to a queue with LPUSH only (workers park far delays).
- ``platform:beat:*`` — beat's lock, tick, the occurrences it sent, its clock.
- ``platform:lock:*``, ``platform:drill:*`` — tasks' locks and the fault drills' records.

Scripts never build a key name: the caller passes every key (the one exception, SWEEP,
is given its room's held-list prefix, since it discovers which workers died).
"""

from dataclasses import dataclass
from functools import lru_cache

PREFIX = "platform:"
QUEUE_PREFIX = PREFIX + "queue:"  # + queue + ":" + ...: the queue's room
# kombu's separator between a queue's name and its priority step (kombu.transport.redis).
PRIORITY_SEPARATOR = "\x06\x16"


def queue_of(queue_key: str) -> str:
    """The queue a list belongs to: ``cert`` for ``cert`` and each of its priority steps."""
    return queue_key.split(PRIORITY_SEPARATOR, 1)[0]


@dataclass(frozen=True)
class Room:
    """The keys of one queue's room, ``platform:queue:<queue>:*``."""

    queue: str

    @property
    def prefix(self) -> str:
        return f"{QUEUE_PREFIX}{self.queue}:"

    # Leases (platform_core.broker.leases) of the workers consuming this queue.
    @property
    def leases(self) -> str:  # ZSET worker id -> lease expiry (ms, the room's clock)
        return self.prefix + "leases"

    @property
    def lease_sources(self) -> str:  # HASH worker id -> its queue keys, "\n"-joined
        return self.prefix + "lease_sources"

    @property
    def lease_renewed(self) -> str:  # HASH worker id -> last renewal (ms)
        return self.prefix + "lease_renewed"

    @property
    def redelivered(self) -> str:  # HASH queue key -> messages a sweep handed back
        return self.prefix + "redelivered"

    @property
    def rejected(self) -> str:  # HASH reason -> messages refused (broker.rejections)
        return self.prefix + "rejected"

    @property
    def clock(self) -> str:
        """The room's clock (lua/clock.lua, lua/clock_checked.lua): HASH run_id (the Redis
        that set the offset), offset (ms added to its TIME), last (the last reading, ms),
        jumps (changes of primary whose gap was too large to absorb). One per room, so
        no other queue's credentials can move this queue's leases or due times."""
        return self.prefix + "clock"

    @property
    def held_prefix(self) -> str:  # + worker id + ":" + queue key: LIST of raw items
        return self.prefix + "held:"

    def held(self, worker_id: str, queue_key: str) -> str:
        return f"{self.held_prefix}{worker_id}:{queue_key}"

    def delayed(self, queue_key: str) -> str:  # ZSET raw item -> due (ms, the room's clock)
        return f"{self.prefix}delayed:{queue_key}"

    def attempts(self, task_id: str) -> str:  # deliveries of a redelivered message
        return f"{self.prefix}attempts:{task_id}"

    @property
    def rates(self) -> str:  # HASH task name (or ALL_TASKS) -> its rate limit, set at runtime
        return self.prefix + "rates"

    def rate_slot(self, name: str) -> str:  # STRING: the limit's next free slot (ms)
        return f"{self.prefix}rate:{name}"

    def gate(self, name: str) -> str:  # LIST: deliveries waiting for the limit's slots
        return f"{self.prefix}gate:{name}"

    @property
    def gated(self) -> str:  # HASH limit name -> deliveries waiting at its gate
        return self.prefix + "gated"

    @property
    def cancelled(self) -> str:  # ZSET task id -> when it was cancelled (ms, the room's clock)
        return self.prefix + "cancelled"

    @property
    def unique_prefix(self) -> str:  # + a task's uniqueness name (tasks.unique)
        return self.prefix + "unique:"

    def unique(self, name: str) -> str:  # STRING: the id of the task holding the name
        return self.unique_prefix + name


@lru_cache(maxsize=256)
def room(queue_key: str) -> Room:
    """The room of ``queue_key`` (a queue or one of its priority steps)."""
    return Room(queue_of(queue_key))


def held(worker_id: str, queue_key: str) -> str:
    """The list of what ``worker_id`` took from ``queue_key`` and has not acknowledged."""
    return room(queue_key).held(worker_id, queue_key)


def delayed(queue_key: str) -> str:
    """The delayed set of ``queue_key``: messages waiting for their due time."""
    return room(queue_key).delayed(queue_key)


# Beat (platform_core.tasks.beat).
BEAT_PREFIX = PREFIX + "beat:"
BEAT_LEADER = BEAT_PREFIX + "leader"  # the active beat's identity (a redis-py lock token)
BEAT_TICK = BEAT_PREFIX + "tick"  # the active beat's last tick (ms, beat's clock)
BEAT_CLOCK = BEAT_PREFIX + "clock"  # beat's clock (as Room.clock)
# HASH name -> the last occurrence (ms) enqueued under that name (lua/enqueue_once.lua):
# messages carrying channel.ONCE_HEADER, e.g. each periodic job's due times (beat).
ONCE = BEAT_PREFIX + "once"

LOCK_PREFIX = PREFIX + "lock:"  # + name: jobs that must not overlap (tasks.locks)
DRILL_PREFIX = PREFIX + "drill:"  # + token (+ ":…"): fault drills' records (tasks.drills)


def lock(name: str) -> str:
    return f"{LOCK_PREFIX}{name}"


def drill(token: str, part: str = "") -> str:
    """A drill's record: executions (no part), ``started_at``, ``starts`` or ``sent``."""
    return f"{DRILL_PREFIX}{token}:{part}" if part else f"{DRILL_PREFIX}{token}"
