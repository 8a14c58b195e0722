"""Rejected messages: one log line an operator can act on, and a counter in Redis.

Every layer that refuses an item (the transport, the consumer, the task base) reports
it here, so the line reads the same wherever the item was stopped:

    Rejected message (<reason>): <what was wrong> [queue=<queue> …]; discarded
"""

import logging

import redis

from platform_core.broker import clients, keys
from platform_core.errors import Rejection

logger = logging.getLogger("platform_core.rejected")


def count_rejection(queue: str, reason: Rejection) -> None:
    """HINCRBY the queue's room's ``rejected`` ``<reason>``; never raises into the consumer."""
    try:
        clients.shared().hincrby(keys.room(queue).rejected, str(Rejection(reason)), 1)
    except redis.RedisError as exc:
        logger.warning("could not count a rejected message: %s", exc)


def report_rejection(queue: str, reason: Rejection, detail: str, **context) -> None:
    """Log the one line for a rejected item and count it."""
    where = " ".join(f"{key}={value}" for key, value in {"queue": queue, **context}.items())
    logger.error("Rejected message (%s): %s [%s]; discarded", Rejection(reason), detail, where)
    count_rejection(queue, reason)
