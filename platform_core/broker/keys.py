"""Every Redis key the platform keeps beside kombu's own, named once.

kombu's keys are the queues themselves (a list named after the queue, one more per
priority step: ``<queue>\\x06\\x16<step>``, see transport.priority_keys), the bindings
(``_kombu.binding.*``) and Celery's results (``celery-task-meta-<id>``). Everything the
platform adds starts with ``platform:``. Scripts never build a key name from a prefix of
their own: the caller passes every key (the one exception, SWEEP, is given the held-list
prefix as an argument, since it discovers which workers died).

Per worker: held lists hang off the worker id, so one worker's deliveries are one pattern
(``platform:held:<worker id>:*``); per queue: the delayed set ends with the queue key.
"""

PREFIX = "platform:"

# Leases (platform_core.broker.leases).
LEASES = PREFIX + "leases"  # ZSET worker id -> lease expiry (ms, Redis TIME)
LEASE_SOURCES = PREFIX + "lease_sources"  # HASH worker id -> its queue keys, "\n"-joined
LEASE_RENEWED = PREFIX + "lease_renewed"  # HASH worker id -> last renewal (ms, Redis TIME)
# HASH queue key -> messages a sweep handed back after their worker's lease expired.
REDELIVERED = PREFIX + "redelivered"
HELD_PREFIX = PREFIX + "held:"  # + worker id + ":" + queue key: LIST of raw items

# Delays (platform_core.broker.delays).
DELAYED_PREFIX = PREFIX + "delayed:"  # + queue key: ZSET raw item -> due (ms, Redis TIME)

# Refusals and poison messages (platform_core.broker.rejections, tasks.attempts).
REJECTED = PREFIX + "rejected"  # HASH "<queue>:<reason>" -> messages refused
ATTEMPTS_PREFIX = PREFIX + "attempts:"  # + task id: deliveries of a redelivered message

# The platform's clock (lua/clock.lua, lua/clock_checked.lua): HASH run_id (the Redis
# that set the offset), offset (ms added to its TIME), last (the last reading, ms),
# jumps (changes of primary whose gap was too large to absorb).
CLOCK = PREFIX + "clock"

# HASH name -> the last occurrence (ms) enqueued under that name (lua/enqueue_once.lua):
# messages carrying channel.ONCE_HEADER, e.g. each periodic job's due times (beat).
ONCE = PREFIX + "once"

# Beat (platform_core.tasks.beat).
BEAT_LEADER = PREFIX + "beat:leader"  # the active beat's identity (a redis-py lock token)
BEAT_TICK = PREFIX + "beat:tick"  # the active beat's last tick (ms, Redis TIME)

# HASH queue key -> "<message id> <ms>": when the queue metrics first saw a message
# without a send stamp (from a plain Celery client) at the head of that queue.
FIRST_SEEN = PREFIX + "first_seen"

LOCK_PREFIX = PREFIX + "lock:"  # + name: jobs that must not overlap (tasks.locks)
DRILL_PREFIX = PREFIX + "drill:"  # + token (+ ":…"): fault drills' records (tasks.drills)


def held(worker_id: str, queue_key: str) -> str:
    """The list of what ``worker_id`` took from ``queue_key`` and has not acknowledged."""
    return f"{HELD_PREFIX}{worker_id}:{queue_key}"


def delayed(queue_key: str) -> str:
    """The delayed set of ``queue_key``: messages waiting for their due time."""
    return f"{DELAYED_PREFIX}{queue_key}"


def attempts(task_id: str) -> str:
    return f"{ATTEMPTS_PREFIX}{task_id}"


def lock(name: str) -> str:
    return f"{LOCK_PREFIX}{name}"


def drill(token: str, part: str = "") -> str:
    """A drill's record: executions (no part), ``started_at``, ``starts`` or ``sent``."""
    return f"{DRILL_PREFIX}{token}:{part}" if part else f"{DRILL_PREFIX}{token}"
