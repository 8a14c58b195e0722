"""Delays of any length, held in Redis, not in a worker's memory.

A task due more than HORIZON_SECONDS from now (``countdown``, ``eta``, ``retry(countdown=…)``)
is not handed to a worker to hold: it waits in its queue's delayed set
(its room's ``delayed:<queue key>``, a ZSET scored by due time on Redis' clock) and is
moved to the front of its queue when due, by one atomic script, whichever worker's
promoter runs it first. It survives worker and Redis restarts (AOF) like any queued
message, and no worker holds it meanwhile, so there is nothing to redeliver.

The platform's producers park such messages as they publish (channel.Channel._put).
A message with a far ``eta`` from a producer outside the platform (a plain Celery
client) reaches a worker first; the worker parks it on arrival (transport).

Clocks: the producer sends the delay (eta minus its own now), and Redis turns it into a
due time with ``TIME``: every due-time decision is made on Redis' clock.
"""

import logging
import threading
from datetime import UTC, datetime
from time import monotonic, time

import redis

from platform_core.broker import keys, rate_limits
from platform_core.broker.scripts import PROMOTE
from platform_core.errors import DelayTooLong

logger = logging.getLogger(__name__)

# Messages due within this many seconds go straight to their queue (the worker that
# takes them holds them until due, as stock Celery does); later ones are parked.
HORIZON_SECONDS = 2.0
# A promoter sleeps until the next message is due, but never longer than this: a
# message parked after its last look (due >= HORIZON_SECONDS later) is seen in time.
PROMOTE_POLL_SECONDS = 1.0
# Messages moved per delayed set per script call (a promoter repeats while it moves more).
PROMOTE_BATCH = 500


def timestamp_of(eta) -> float:
    """``eta`` (datetime or ISO 8601 text) as seconds since the epoch."""
    if isinstance(eta, str):
        eta = datetime.fromisoformat(eta)
    if eta.tzinfo is None:  # Celery's naive ETAs are UTC here (TIME_ZONE = "UTC")
        eta = eta.replace(tzinfo=UTC)
    return eta.timestamp()


def seconds_until(eta) -> float:
    """Seconds from now (this host's clock) until ``eta`` (datetime or ISO 8601 text)."""
    return timestamp_of(eta) - time()


def eta_of(envelope: dict) -> float | None:
    """The message's ETA in seconds since the epoch, if it has one that can be read."""
    headers = envelope.get("headers")
    eta = headers.get("eta") if isinstance(headers, dict) else None
    if not isinstance(eta, str):
        return None
    try:
        return timestamp_of(eta)
    except (ValueError, OverflowError, OSError):
        return None  # the consumer's checks reject it with a reason


def delay_of(envelope: dict) -> float | None:
    """Seconds until the message is due, if it has an ETA that can be read; else None."""
    eta = eta_of(envelope)
    return None if eta is None else eta - time()


def should_park(delay: float | None) -> bool:
    return delay is not None and delay > HORIZON_SECONDS


def check_delay(name: str, countdown, eta, limit_seconds: int) -> None:
    """Refuse a delay beyond the sanity limit, naming the limit and the setting."""
    if countdown is None and eta is None:
        return
    wait = seconds_until(eta) if eta is not None else float(countdown)
    if wait > limit_seconds:
        raise DelayTooLong(
            f"{name}: a delay of {wait:.0f} s ({wait / 86400:.1f} days) exceeds the platform's "
            f"limit of {limit_seconds} s ({limit_seconds / 86400:.0f} days, "
            "PLATFORM_MAX_DELAY_SECONDS). Nothing was sent. For work further ahead, "
            "schedule a periodic job (manage.py periodic)."
        )


class Promoter:
    """Moves due messages of one worker's queues from their delayed sets, in a thread; and
    releases the deliveries waiting at the queue's rate-limit gates at their slots."""

    def __init__(self, client: redis.Redis, name: str, limits=None):
        self.client = client
        self.name = name
        self.limits = limits  # rate_limits.Limits of the queue
        self.keys: list[str] = []  # (delayed set, queue list) pairs, flattened
        self._stop = threading.Event()
        self._thread = None

    def watch(self, queue_keys) -> None:
        watched = set(self.keys[1::2]) | set(queue_keys)
        (self.room,) = {keys.room(queue) for queue in watched}  # one queue's priority steps
        self.keys = [key for queue in sorted(watched) for key in (keys.delayed(queue), queue)]
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def release_gates(self) -> float:
        """Release what waits at the rate-limit gates; seconds until the next release."""
        if self.limits is None:
            return -1.0
        self.limits.reload(self.client)
        return rate_limits.release(self.client, self.limits, keys.delayed(self.limits.queue))

    def promote(self) -> float:
        """Move every due message now; seconds until the next one is due (-1: none)."""
        while True:
            moved, next_ms = PROMOTE(
                self.client, self.keys, (PROMOTE_BATCH,), clock=self.room.clock
            )
            if moved < PROMOTE_BATCH:
                return next_ms / 1000 if next_ms >= 0 else -1.0

    def _run(self) -> None:
        wait, failing, gates_at = 0.0, False, 0.0
        while not self._stop.wait(wait):
            try:
                if monotonic() >= gates_at:
                    gates = self.release_gates()
                    gates_at = monotonic() + max(
                        rate_limits.RELEASE_EVERY_SECONDS,
                        gates if gates >= 0 else PROMOTE_POLL_SECONDS,
                    )
                next_due = self.promote()
                to_gates = max(0.0, gates_at - monotonic())
                next_due = to_gates if next_due < 0 else min(next_due, to_gates)
            except redis.RedisError as exc:
                if not failing:  # once per outage, not once per poll
                    logger.warning("Delayed messages not moved: %s (retrying)", exc)
                failing, next_due = True, -1.0
            except Exception:  # a dead promoter would strand every delayed task
                if self._stop.is_set():
                    return  # stopped: its client was closed under it
                logger.exception("Delayed messages not moved: unexpected error (retrying)")
                failing, next_due = True, -1.0
            else:
                if failing:
                    logger.info("Delayed messages moving again")
                failing = False
            wait = PROMOTE_POLL_SECONDS if next_due < 0 else min(next_due, PROMOTE_POLL_SECONDS)

    def stop(self) -> None:
        self._stop.set()
        self.client.connection_pool.disconnect()  # the channel's thread_client
