"""The one place the platform opens a Redis client outside kombu's own pools.

Every client gets the timeouts of platform_core.config.timeouts: connect within
CONNECT_SECONDS, each reply within COMMAND_SECONDS (PROBE_SECONDS for a probe). This is
where a broker URL becomes a connection, so it is where Sentinel and TLS options belong.
"""

import os

import redis
from django.conf import settings

from platform_core.config import timeouts

_shared: dict[str, redis.Redis] = {}
_shared_pid = None


def connect(url: str | None = None, *, probe: bool = False) -> redis.Redis:
    """A new client on ``url`` (default: the broker). The caller closes it.

    ``probe``: the short timeouts, for "is it there?" and best-effort writes.
    """
    seconds = timeouts.PROBE_SECONDS if probe else timeouts.COMMAND_SECONDS
    return redis.Redis.from_url(
        url or settings.CELERY_BROKER_URL,
        socket_connect_timeout=min(seconds, timeouts.CONNECT_SECONDS),
        socket_timeout=seconds,
    )


def shared(url: str | None = None) -> redis.Redis:
    """This process's client on ``url`` (default: the broker), opened once.

    For short commands from task code, the consumer and beat: a rejection or a lock must
    not show up as a connection coming and going. Never closed by its callers; a forked
    child opens its own (redis-py's pool also resets itself in a child).
    """
    global _shared_pid
    if _shared_pid != os.getpid():
        _shared.clear()
        _shared_pid = os.getpid()
    url = url or settings.CELERY_BROKER_URL
    if url not in _shared:
        _shared[url] = connect(url)
    return _shared[url]
