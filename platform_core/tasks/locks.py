"""A lock with a TTL, for jobs that must not overlap (celery-once#147: a lock without
a TTL is held forever once its holder is SIGKILLed)."""

import contextlib
import threading

import redis

from platform_core.broker import clients, keys

_local_locks: dict[str, threading.Lock] = {}


@contextlib.contextmanager
def exclusive(name: str, ttl_seconds: int, *, eager: bool):
    """Yield True if this caller holds ``name``, False if someone else does.

    In synchronous mode (no broker) there is one process, so a local lock suffices.
    """
    if eager:
        lock = _local_locks.setdefault(name, threading.Lock())
        acquired = lock.acquire(blocking=False)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()
        return
    lock = clients.shared().lock(keys.lock(name), timeout=ttl_seconds, blocking=False)
    acquired = lock.acquire()
    try:
        yield acquired
    finally:
        if acquired:
            with contextlib.suppress(redis.exceptions.LockError):
                lock.release()
