"""Rate limits across every worker and host, the broker's side: a delivery whose task (or
queue) has a limit runs only at a slot of that limit (lua/admit.lua, GCRA on the room's
clock); one that comes too early waits at the limit's gate in Redis — not in a worker's
memory, not by sleeping a pool process — and is released to the delayed set at its own
slot (lua/gate.lua, by the queue's promoters), marked so it runs without asking again.

Limits: the defaults each worker process registers (DEFAULTS: its tasks' options and its
site's setting, tasks.rate_limits) and the runtime ones in the room's ``rates`` hash
(``manage.py ratelimit``, the admin), which win; a worker reads the hash every
RELOAD_SECONDS. ALL_TASKS names the limit of the whole queue, for a task without its own.
"""

import threading
from time import monotonic

import redis

from platform_core.broker import keys
from platform_core.broker.scripts import ADMIT, GATE
from platform_core.config.queues import QUEUES, queue_for_task_name
from platform_core.config.rates import Rate
from platform_core.errors import BadRate

ALL_TASKS = "*"
RATE_SLOT_HEADER = "platform_rate_slot"  # written on a released item by lua/gate.lua
RELOAD_SECONDS = 1.0
# Slots taken ahead when releasing: a limit changed at runtime applies within this.
RELEASE_AHEAD_MS = 2000
RELEASE_BATCH = 500
# A promoter releases at most this often (each release takes the slots of RELEASE_AHEAD_MS).
RELEASE_EVERY_SECONDS = 0.25

# queue -> name (task, or ALL_TASKS) -> its default rate, registered by this process.
DEFAULTS: dict[str, dict[str, Rate]] = {}


def target_of(name: str) -> tuple[str, str]:
    """(queue, limit name) of a task name, or of a queue (its limit for all its tasks)."""
    if name in QUEUES:
        return name, ALL_TASKS
    queue = queue_for_task_name(name)
    if queue is None:
        raise BadRate(
            f"{name!r} is neither a queue ({', '.join(QUEUES)}) nor a platform task name "
            "(celery_tasks.<queue>.<module>.<function>)"
        )
    return queue, name


def store(client: redis.Redis, name: str, rate: Rate | None) -> None:
    """Set (or, with None, clear) the runtime limit of a task or a queue; its workers
    apply it within RELOAD_SECONDS + RELEASE_AHEAD_MS."""
    queue, field = target_of(name)
    if rate is None:
        client.hdel(keys.Room(queue).rates, field)
    else:
        client.hset(keys.Room(queue).rates, field, str(rate))


class Limits:
    """The limits of one queue as this process sees them: defaults, then runtime ones."""

    def __init__(self, queue: str):
        self.room = keys.Room(queue)
        self.queue = queue
        self._runtime: dict[str, Rate] = {}
        self._loaded_at = -RELOAD_SECONDS
        self._lock = threading.Lock()

    def reload(self, client: redis.Redis, force=False) -> None:
        if not force and monotonic() - self._loaded_at < RELOAD_SECONDS:
            return
        runtime = {}
        for name, text in client.hgetall(self.room.rates).items():
            try:
                runtime[name.decode()] = Rate.parse(text.decode())
            except BadRate:
                continue  # written by hand, wrongly: the default applies (the command checks)
        with self._lock:
            self._runtime, self._loaded_at = runtime, monotonic()

    def effective(self) -> dict[str, Rate]:
        with self._lock:
            return {**DEFAULTS.get(self.queue, {}), **self._runtime}

    def for_task(self, task_name: str) -> tuple[str, Rate] | None:
        """The (name, rate) a delivery of ``task_name`` is counted against, if any."""
        limits = self.effective()
        for name in (task_name, ALL_TASKS):
            if name in limits:
                return name, limits[name]
        return None


def admit(client, limits: Limits, name: str, rate: Rate, held_key: str, item: bytes) -> int:
    """1: run it now; 0: it waits at the gate; -1: no longer held (swept meanwhile)."""
    room = limits.room
    return int(
        ADMIT(
            client,
            (room.rate_slot(name), room.gate(name), held_key, room.gated),
            (item, rate.step_ms, name),
            clock=room.clock,
        )
    )


def release(client, limits: Limits, delayed_key: str) -> float:
    """Release the items at every gate of the queue whose slot has come; seconds until
    the next slot of a non-empty gate (-1: every gate is empty)."""
    room, soonest = limits.room, -1.0
    for name, rate in limits.effective().items():
        while True:
            released, next_ms = GATE(
                client,
                (room.rate_slot(name), room.gate(name), delayed_key, room.gated),
                (rate.step_ms, RELEASE_BATCH, RELEASE_AHEAD_MS, name, RATE_SLOT_HEADER),
                clock=room.clock,
            )
            if released < RELEASE_BATCH:
                break
        if next_ms >= 0:
            wait = max(0.0, (next_ms - RELEASE_AHEAD_MS) / 1000)
            soonest = wait if soonest < 0 else min(soonest, wait)
    return soonest


def slot_of(envelope: dict) -> int | None:
    headers = envelope.get("headers")
    slot = headers.get(RATE_SLOT_HEADER) if isinstance(headers, dict) else None
    return slot if isinstance(slot, int) else None
