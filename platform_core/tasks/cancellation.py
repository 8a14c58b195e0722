"""Cancelling a task: ``manage.py cancel <task id>`` or ``cancel(task_id)``.

- **Waiting or delayed**: its message is taken out of Redis (the queue's lists and
  delayed sets, by its exact bytes), its result marked REVOKED (a waiter wakes) and a
  ``task-revoked`` event sent (Flower shows it).
- **Held by a worker** (running, or reserved in its prefetch window): the cancellation is
  recorded in the queue's room (``platform:queue:<queue>:cancelled``); the worker hears
  it within ``HEAR_SECONDS`` (1 s: its lease thread reads the room, broker.leases) and
  stops the task through Celery's soft time limit path (SIGUSR1: the task gets
  ``SoftTimeLimitExceeded`` and may clean up), or drops it before it starts. Celery marks
  it REVOKED, acknowledges the message and sends ``task-revoked``; the message is not
  handed out again.
- The record outlives every worker: a worker starting hears every cancellation kept, so
  a cancelled message a lease sweep hands back is dropped by whichever worker takes it.
  Kept for ``PLATFORM_MAX_DELAY_SECONDS`` (no message waits longer).

A task id nowhere in the queue(s) — unknown, already finished, not yet sent — is one clear
error (UnknownTask) and records nothing.
"""

import logging
import re
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from redis.exceptions import NoPermissionError

from platform_core.broker import cancellations, clients, keys
from platform_core.broker.transport import priority_keys
from platform_core.config.queues import QUEUES
from platform_core.errors import UnknownTask

logger = logging.getLogger(__name__)

# Celery's soft time limit signal (prefork): the running task gets SoftTimeLimitExceeded.
STOP_SIGNAL = "SIGUSR1"
_TASK_ID = re.compile(r"^[\w.:-]{1,200}$")  # uuids, and any id a caller chose sensibly


@dataclass(frozen=True)
class Cancelled:
    task_id: str
    queue: str
    removed: int  # messages taken out of Redis (waiting or delayed)
    held_by: str | None  # the worker told to stop it (running or reserved), if one held it

    def __str__(self) -> str:
        if self.removed:
            return f"{self.task_id}: removed from {self.queue} before it ran (REVOKED)"
        return (
            f"{self.task_id}: held by worker {self.held_by} on {self.queue}; it stops the "
            "task (soft time limit) or drops it before it starts, within a second"
        )


def cancel(task_id: str, queue: str | None = None) -> Cancelled:
    """Cancel ``task_id`` in ``queue`` (default: look in every queue)."""
    if not isinstance(task_id, str) or not _TASK_ID.match(task_id):
        raise UnknownTask(f"{task_id!r} is not a task id (e.g. the id .delay() returned)")
    if queue is not None and queue not in QUEUES:
        raise UnknownTask(f"no queue {queue!r}; the queues are {', '.join(QUEUES)}")
    client = clients.shared()
    searched, closed = [queue] if queue else list(QUEUES), []
    for name in searched:
        try:
            removed = cancellations.take_waiting(client, priority_keys(name).values(), task_id)
            holder = None if removed else cancellations.held_by(client, name, task_id)
        except NoPermissionError:
            closed.append(name)  # a site's credentials reach its own queue only (broker.acl)
            continue
        if removed or holder:
            cancellations.record(client, name, task_id, settings.PLATFORM_MAX_DELAY_SECONDS)
            if removed:
                _announce_revoked(name, task_id)
            outcome = Cancelled(task_id, name, len(removed), holder)
            logger.info("Cancelled %s", outcome)
            return outcome
    looked = [name for name in searched if name not in closed]
    if not looked:
        raise UnknownTask(
            f"{task_id}: this process's Redis user may not touch {', '.join(closed)} "
            "(broker.acl); cancel from that site, or as the operator; nothing was cancelled"
        )
    raise UnknownTask(
        f"no task {task_id} is waiting, delayed or held by a worker in "
        f"{', '.join(looked)}{_finished(task_id)}; nothing was cancelled"
        + (f" (not searched, this Redis user may not: {', '.join(closed)})" if closed else "")
    )


def _finished(task_id) -> str:
    from platform_core.tasks.registry import platform_apps

    app = next(iter(platform_apps().values()))
    state = app.backend.get_task_meta(task_id).get("status")
    return f" (it has finished: {state})" if state and state != "PENDING" else ""


def _announce_revoked(queue: str, task_id: str) -> None:
    """As a worker does for a revoked task: the result REVOKED, a task-revoked event."""
    from platform_core.tasks.registry import platform_apps

    app = platform_apps()[queue]
    app.backend.mark_as_revoked(task_id, "cancelled")
    with app.events.default_dispatcher() as dispatcher:
        dispatcher.send("task-revoked", uuid=task_id, terminated=False, signum=None, expired=False)


def is_cancelled(queue: str, task_id: str) -> bool:
    return clients.shared().zscore(keys.Room(queue).cancelled, task_id) is not None


# In the worker.


def listen(consumer) -> None:
    """Make ``consumer`` (the worker's) stop the tasks cancelled in its queue."""
    cancellations.LISTENERS[:] = [partial(_heard, consumer)]


def _heard(consumer, task_ids) -> None:
    # From the lease thread: the consumer's event loop does the work (kombu's Hub is
    # safe to call into from another thread).
    hub = consumer.hub
    if hub is None:
        _stop(consumer, task_ids)
    else:
        hub.call_soon(_stop, consumer, task_ids)


def _stop(consumer, task_ids) -> None:
    """Celery's own revoke, in this worker only: reserved requests are dropped when their
    turn comes, running ones stopped through the soft time limit.

    fence: celery-worker-revoke (platform_core/config/fences.py)."""
    from celery.worker import state

    state.revoked.update(task_ids)
    for task_id in task_ids:
        request = state.requests.get(task_id)  # reserved by this worker, or running
        if request is not None:
            logger.warning("Task %s[%s] cancelled: stopping it", request.name, task_id)
            request.terminate(consumer.pool, signal=STOP_SIGNAL)
