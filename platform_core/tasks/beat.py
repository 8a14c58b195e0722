"""django-celery-beat's database scheduler, with a Redis leader lock.

Upstream has no guard against two beats (celery#2856, django-celery-beat#337): each
would send every periodic task. Here only the beat that holds the lock sends; any
other waits on standby and takes over when the holder stops refreshing it.
"""

import datetime
import logging
import os
import socket

import redis
from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler
from redis.exceptions import LockError

from platform_core.broker import clients, keys
from platform_core.broker.scripts import STAMP_TIME

logger = logging.getLogger(__name__)


class SingleBeatScheduler(DatabaseScheduler):
    def __init__(self, *args, **kwargs):
        self._identity = f"{socket.gethostname()}:{os.getpid()}"
        self._redis = clients.shared()
        self._ttl = settings.PLATFORM_BEAT_LOCK_TTL
        # A standby polls at a third of the TTL: it takes over at most TTL + TTL/3
        # after the leader's last refresh.
        self._standby_poll = max(1.0, self._ttl / 3)
        self._lock = self._redis.lock(
            keys.BEAT_LEADER, timeout=self._ttl, thread_local=False, blocking=False
        )
        self._leading = False
        self._standby_announced = False
        super().__init__(*args, **kwargs)

    def _hold_leadership(self) -> bool:
        try:
            if self._leading:
                self._lock.reacquire()
                return True
            if self._lock.acquire(token=self._identity.encode()):
                logger.info("beat %s is now the active beat", self._identity)
                self._leading = True
                self._standby_announced = False
                # Re-read the schedule: the previous leader may have changed last_run_at.
                self._last_full_sync = datetime.datetime.min
                return True
        except LockError:
            logger.warning("beat %s lost the leader lock; going to standby", self._identity)
        except redis.RedisError as exc:
            logger.warning(
                "beat %s cannot reach Redis for the leader lock: %s", self._identity, exc
            )
        self._leading = False
        if not self._standby_announced:
            self._standby_announced = True
            logger.info(
                "beat %s on standby; active beat: %s", self._identity, self._current_holder()
            )
        return False

    def _stamp_tick(self) -> None:
        # For the metrics: seconds since the active beat's last tick (Redis' clock).
        try:
            STAMP_TIME(self._redis, (keys.BEAT_TICK,))
        except redis.RedisError as exc:
            logger.warning("beat %s could not stamp its tick: %s", self._identity, exc)

    def _current_holder(self) -> str:
        try:
            value = self._redis.get(keys.BEAT_LEADER)
        except redis.RedisError:
            return "unknown"
        return value.decode() if value else "none"

    def tick(self, *args, **kwargs):
        if not self._hold_leadership():
            return self._standby_poll
        self._stamp_tick()
        # Sleep less than the lock's TTL so it is refreshed in time.
        return min(super().tick(*args, **kwargs), self._ttl / 3)

    def close(self):
        if self._leading:
            try:
                self._lock.release()
            except (LockError, redis.RedisError):
                pass
        super().close()
