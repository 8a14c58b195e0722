"""Worker leases: a worker's deliveries go back to their queues when it dies, never while
it lives.

A consuming channel takes a lease in Redis (its queue's room, ``keys.Room.leases``,
expiry on the room's clock) and renews it from a thread of its own, every third of the
lease: a task that keeps a pool process (or, with the solo pool, the main thread) busy
does not stop the renewal. Every message the channel takes is recorded under its worker
id by the fetch script (lua/fetch.lua). The same thread sweeps: any expired lease's
messages are moved back to the front of their queues, marked redelivered, by one
atomic script — many sweepers, each dead worker swept once.

A worker cut off from Redis (or paused) for longer than its lease finds on its next
renewal that the lease was swept: it logs it and takes the lease again under the same
id. What it held meanwhile has been handed to other workers and may run twice; its
acknowledgements only ever remove entries from its own lists, never another worker's.

The id is the process's, not the channel's: after a lost connection (a Redis restart, a
failover) the worker's next channel renews the same lease, so a task still running
through the outage stays this worker's and is acknowledged from its held list when done
(with a lease per channel, the old one ran out and a sweep handed that task out again:
a 60 s task ran twice across a failover). What the old channel held but was not running
is handed back by the next channel (qos.HAND_BACK).
"""

import logging
import os
import socket
import threading
import uuid
from time import monotonic

import redis

from platform_core.broker import cancellations, keys
from platform_core.broker.scripts import RELEASE, RENEW, SWEEP


def lease_keys(room: keys.Room) -> tuple[str, str, str]:
    """The room's leases, lease sources and renewals (RENEW, SWEEP, RELEASE take them)."""
    return (room.leases, room.lease_sources, room.lease_renewed)


logger = logging.getLogger(__name__)

# Expired leases swept per script call (a sweep repeats while it finds more).
SWEEP_BATCH = 20


_process_worker_id: tuple[int, str] | None = None


def process_worker_id() -> str:
    """This process's worker id (a forked child makes its own)."""
    global _process_worker_id
    if _process_worker_id is None or _process_worker_id[0] != os.getpid():
        made = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        _process_worker_id = (os.getpid(), made)
    return _process_worker_id[1]


def sweep(client: redis.Redis, room: keys.Room) -> list:
    """One SWEEP of ``room``: {workers swept, messages handed back, worker ids...}."""
    return SWEEP(
        client,
        (*lease_keys(room), room.redelivered),
        (SWEEP_BATCH, room.held_prefix),
        clock=room.clock,
    )


class Lease:
    """The lease of one consuming channel, renewed and sweeping in its own thread."""

    def __init__(self, client: redis.Redis, seconds: float, sweep_seconds: float):
        self.worker_id = process_worker_id()
        self.client = client
        self.milliseconds = int(seconds * 1000)
        self.sweep_seconds = sweep_seconds
        self.sources: list[str] = []
        self.room: keys.Room | None = None
        self._stop = threading.Event()
        self._thread = None
        # Cancellations heard: the latest one's time (ms; at its start a worker hears of
        # every one kept) and the ids recorded at that very ms (the next look includes it).
        self._cancelled_since, self._heard_last = 0, set()

    def take(self, sources) -> None:
        """Record the queue keys this worker takes from and (re)take the lease now."""
        rooms = {keys.room(source) for source in sources} | ({self.room} - {None})
        if len(rooms) != 1:
            # One room per lease: each queue's workers hold only their own queue's keys.
            raise ValueError(
                "A consuming channel takes from one queue (with its priority steps); "
                f"asked for {sorted(room.queue for room in rooms)}: one worker per queue."
            )
        (self.room,) = rooms
        self.sources = sorted(set(self.sources) | set(sources))
        self._renew(new=True)
        self.hear_cancellations()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"lease {self.worker_id}", daemon=True
            )
            self._thread.start()

    def renew_after_loss(self) -> None:
        """The fetch script found the lease gone: take it again (and say so)."""
        logger.error(
            "Lease of worker %s was lost (not renewed within %.0f s: paused, or cut off "
            "from Redis); what it held was handed to other workers and may run twice. "
            "Taking the lease again.",
            self.worker_id,
            self.milliseconds / 1000,
        )
        self._renew(new=True)

    def _renew(self, new=False) -> bool:
        held = RENEW(
            self.client,
            lease_keys(self.room),
            [
                self.worker_id,
                self.milliseconds,
                "\n".join(self.sources),
                "new" if new else "renew",
            ],
            clock=self.room.clock,
        )
        return bool(held)

    def hear_cancellations(self) -> None:
        """Tell the listeners (the worker's consumer) which tasks of this queue were
        cancelled since the last look (broker.cancellations)."""
        seen = cancellations.since(self.client, self.room, self._cancelled_since)
        new = [task_id for task_id, _ in seen if task_id not in self._heard_last]
        if seen:
            latest = seen[-1][1]
            at_latest = {task_id for task_id, when in seen if when == latest}
            if latest == self._cancelled_since:
                at_latest |= self._heard_last
            self._cancelled_since, self._heard_last = latest, at_latest
        if new:
            cancellations.tell_listeners(new)

    def sweep(self) -> int:
        """Hand the messages of every expired lease back to their queues; how many."""
        restored = 0
        while True:
            swept, moved, *workers = sweep(self.client, self.room)
            restored += moved
            if workers:
                logger.warning(
                    "Lease expired for %s: %d message(s) back on their queues",
                    ", ".join(w.decode() for w in workers),
                    moved,
                )
            if swept < SWEEP_BATCH:
                return restored

    def _run(self) -> None:
        # Renew three times per lease; sweep at least as often (both are one script);
        # look for cancellations every HEAR_SECONDS (one ZRANGEBYSCORE).
        tick = min(self.milliseconds / 3000, self.sweep_seconds)
        renew_at = monotonic() + tick
        while not self._stop.wait(min(tick, cancellations.HEAR_SECONDS)):
            try:
                if monotonic() >= renew_at:
                    renew_at = monotonic() + tick
                    if not self._renew():
                        self.renew_after_loss()
                    self.sweep()
                self.hear_cancellations()
            except redis.RedisError as exc:
                logger.warning("Lease %s not renewed: %s (retrying)", self.worker_id, exc)
            except Exception:  # a dead lease thread: everything held runs twice
                if self._stop.is_set():
                    return  # released: its client was closed under it
                logger.exception("Lease %s: unexpected error (retrying)", self.worker_id)

    def release(self) -> None:
        """Stop renewing; give the lease up now if nothing is held any more."""
        self._stop.set()
        try:
            held = [self.room.held(self.worker_id, source) for source in self.sources]
            left = RELEASE(self.client, (*lease_keys(self.room), *held), (self.worker_id,))
        except redis.RedisError as exc:
            logger.warning("Lease %s not released (%s): it will expire", self.worker_id, exc)
            return
        finally:
            self.client.connection_pool.disconnect()  # the channel's thread_client
        if left:
            logger.warning(
                "Lease %s: %d message(s) still held at close (running): acknowledged "
                "through this process's next connection, or back on their queues when "
                "the lease expires if it stops",
                self.worker_id,
                left,
            )
