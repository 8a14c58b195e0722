"""Counting deliveries of messages whose worker died, to stop a poison task's loop.

With late acks, a task that kills its worker (OOM, segfault) goes back on the queue
and kills the next worker too, forever (celery#3541, #4984). Only *redelivered*
messages are counted, so the normal path costs nothing.
"""

from platform_core.broker import clients, keys

ATTEMPTS_TTL_SECONDS = 7 * 24 * 60 * 60


def count_redelivery(queue: str, task_id: str) -> int:
    """Record one more delivery of ``task_id`` from ``queue`` (in its room); return how
    many deliveries there were."""
    key = keys.room(queue).attempts(task_id)
    with clients.shared().pipeline() as pipe:
        # The first delivery was not counted: a redelivery is attempt 2 or later.
        pipe.set(key, 1, nx=True, ex=ATTEMPTS_TTL_SECONDS)
        pipe.incr(key)
        return int(pipe.execute()[1])
