"""Cancellations, the broker's side: kept in the queue's room (``keys.Room.cancelled``),
so they outlive every worker; what is waiting is taken out of Redis; the queue's workers
learn the rest through their lease thread (leases.Lease) and stop what they hold. The
task's side — the call, the command, stopping a running task — is
platform_core.tasks.cancellation.
"""

from collections.abc import Callable, Iterable

import redis

from platform_core.broker import keys
from platform_core.broker.scripts import CANCEL

# How often a consuming worker looks for new cancellations in its queue's room.
HEAR_SECONDS = 1.0
# Items read per LRANGE/ZRANGE while looking for a task: Redis is never busy for long.
SCAN_CHUNK = 500

# Called by a lease thread with the task ids cancelled in its queue since it last looked
# (at its start: every one kept): the worker's consumer registers here (tasks layer).
LISTENERS: list[Callable[[list[str]], None]] = []


def record(client: redis.Redis, queue: str, task_id: str, keep_seconds: float) -> int:
    """Record ``task_id`` cancelled in ``queue``'s room; when (ms, the room's clock)."""
    room = keys.Room(queue)
    keep_ms = int(keep_seconds * 1000)
    return int(CANCEL(client, (room.cancelled,), (task_id, keep_ms), clock=room.clock))


def marker(task_id: str) -> bytes:
    """How a task's id appears in its message (kombu's JSON envelope, Celery's headers)."""
    return f'"id": "{task_id}"'.encode()


def _matching(items: Iterable[bytes], task_id: str) -> list[bytes]:
    found = marker(task_id)
    return [item for item in items if found in item]


def take_waiting(client: redis.Redis, lists: Iterable[str], task_id: str) -> list[bytes]:
    """Remove ``task_id``'s messages from a queue's ``lists`` (one per priority step:
    transport.priority_keys) and their delayed sets, each by its exact bytes (a message a
    worker took meanwhile is not touched); what was removed."""
    removed = []
    for key in lists:
        start = 0
        while batch := client.lrange(key, start, start + SCAN_CHUNK - 1):
            for item in _matching(batch, task_id):
                if client.lrem(key, 1, item):
                    removed.append(item)
            start += SCAN_CHUNK
        delayed = keys.delayed(key)
        start = 0
        while batch := client.zrange(delayed, start, start + SCAN_CHUNK - 1):
            for item in _matching(batch, task_id):
                if client.zrem(delayed, item):
                    removed.append(item)
            start += SCAN_CHUNK
    return removed


def held_by(client: redis.Redis, queue: str, task_id: str) -> str | None:
    """The worker holding ``task_id`` (running it, or reserved), if one does."""
    room = keys.Room(queue)
    for worker, sources in client.hgetall(room.lease_sources).items():
        worker = worker.decode()
        for source in sources.decode().split("\n"):
            if source and _matching(client.lrange(room.held(worker, source), 0, -1), task_id):
                return worker
    return None


def since(client: redis.Redis, room: keys.Room, cursor: int) -> list[tuple[str, int]]:
    """(task id, when) of the cancellations in ``room`` at or after ``cursor`` (ms)."""
    seen = client.zrangebyscore(room.cancelled, cursor, "+inf", withscores=True)
    return [(task_id.decode(), int(when)) for task_id, when in seen]


def tell_listeners(task_ids: list[str]) -> None:
    for listener in LISTENERS:
        listener(task_ids)
