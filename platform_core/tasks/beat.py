"""django-celery-beat's database scheduler, with a Redis leader lock.

Upstream has no guard against two beats (celery#2856, django-celery-beat#337): each
would send every periodic task. Here only the beat that holds the lock sends; any
other waits on standby and takes over when the holder stops refreshing it.

The lock alone cannot promise "once per due time" around a takeover (the lock expiring
early on a new primary whose clock runs ahead; a leader that loses it between two
ticks), and the database's last_run_at is saved only every few minutes, so a new leader
would fire again what the old one fired, or skip what neither did. So each send carries
its due time (the occurrence: the schedule's due point after the entry's last run) and
Redis enqueues it only if it is later than the last one enqueued for that job
(broker.channel.ONCE_HEADER, lua/enqueue_once.lua); and a beat that reads the schedule
takes each job's last run from Redis where that is newer than the database's.
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
from platform_core.broker.channel import ONCE_HEADER
from platform_core.broker.scripts import STAMP_TIME

logger = logging.getLogger(__name__)

# The name a periodic job's occurrences are recorded under (keys.ONCE).
ONCE_PREFIX = "beat:"


def occurrence_ms(entry) -> int | None:
    """When the run ``entry`` is due for was due (ms since the epoch): the schedule's first
    due point after the entry's last run, computed from the last run alone (no "now"), so
    every beat that knows the same last run names the same occurrence. None for schedules
    that cannot say (solar, one-off clocked), which are sent as stock Celery sends them."""
    every, last = entry.schedule, entry.last_run_at
    if last is None:
        return None
    if hasattr(every, "remaining_delta"):  # crontab
        start, ends_in, _ = every.remaining_delta(every.maybe_make_aware(last))
        due = start + ends_in
    elif isinstance(getattr(every, "run_every", None), datetime.timedelta):  # interval
        due = every.maybe_make_aware(last) + every.run_every
    else:
        return None
    return int(due.timestamp() * 1000)


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
            STAMP_TIME(self._redis, (keys.BEAT_TICK,), clock=keys.BEAT_CLOCK)
        except redis.RedisError as exc:
            logger.warning("beat %s could not stamp its tick: %s", self._identity, exc)

    def _current_holder(self) -> str:
        try:
            value = self._redis.get(keys.BEAT_LEADER)
        except redis.RedisError:
            return "unknown"
        return value.decode() if value else "none"

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        due = occurrence_ms(entry)
        if due is None:
            return super().apply_async(entry, producer, advance, **kwargs)
        # For this send only (an entry cannot be copied: ScheduleEntry.__reduce__).
        options = entry.options
        once = {ONCE_HEADER: f"{ONCE_PREFIX}{entry.name}\n{due}"}
        entry.options = {**options, "headers": {**options.get("headers", {}), **once}}
        try:
            return super().apply_async(entry, producer, advance, **kwargs)
        finally:
            entry.options = options

    def all_as_schedule(self):
        # Each job's last run: the database's, or Redis' last enqueued occurrence if later
        # (the database is saved every few minutes; Redis at every send).
        schedule = super().all_as_schedule()
        try:
            sent = self._redis.hgetall(keys.ONCE)
        except redis.RedisError as exc:
            logger.warning("beat %s: last sends not read from Redis: %s", self._identity, exc)
            return schedule
        for name, entry in schedule.items():
            at = sent.get(f"{ONCE_PREFIX}{name}".encode())
            if at is None:
                continue
            last = datetime.datetime.fromtimestamp(int(at) / 1000, tz=datetime.UTC)
            if entry.last_run_at is not None and entry.last_run_at.tzinfo is None:
                last = last.replace(tzinfo=None)
            if entry.last_run_at is None or last > entry.last_run_at:
                entry.last_run_at = last
        return schedule

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
