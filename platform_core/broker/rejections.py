"""Rejected messages: one log line an operator can act on, and a counter in Redis.

Every layer that refuses an item (the transport, the consumer, the task base) reports
it here, so the line reads the same wherever the item was stopped:

    Rejected message (<reason>): <what was wrong> [queue=<queue> …]; discarded
"""

import logging
import os

import redis
from django.conf import settings

from platform_core.broker import keys
from platform_core.errors import Rejection

logger = logging.getLogger("platform_core.rejected")

_client = None
_client_pid = None


def _counter_client() -> redis.Redis:
    # One connection per process, opened once: a rejection must not show up as a
    # connection coming and going (tests compare CLIENT LIST before and after).
    global _client, _client_pid
    if _client is None or _client_pid != os.getpid():
        _client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2)
        _client_pid = os.getpid()
    return _client


def count_rejection(queue: str, reason: Rejection) -> None:
    """HINCRBY ``platform:rejected`` ``<queue>:<reason>``; never raises into the consumer."""
    try:
        _counter_client().hincrby(keys.REJECTED, f"{queue}:{Rejection(reason)}", 1)
    except redis.RedisError as exc:
        logger.warning("could not count a rejected message: %s", exc)


def report_rejection(queue: str, reason: Rejection, detail: str, **context) -> None:
    """Log the one line for a rejected item and count it."""
    where = " ".join(f"{key}={value}" for key, value in {"queue": queue, **context}.items())
    logger.error("Rejected message (%s): %s [%s]; discarded", Rejection(reason), detail, where)
    count_rejection(queue, reason)
