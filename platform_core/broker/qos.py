"""Acknowledgements: what this worker holds, and when it stops holding it.

Every delivery the fetch script records is a :class:`Held` (this worker's held list, the
queue it came from, the item byte for byte). Acknowledging one removes it from the held
list, and stores the task's result if one waits for it (broker.ack_results). Inside a
worker's event loop the removals are kept until the next fetch, which carries them
(lua/fetch.lua), or go in one pipeline at the end of the loop turn
(transport.MultiChannelPoller). A busy worker with a prefetch window of several messages
fetches once half of it is free (channel.Channel._fetch_can_wait), so the acks of several
tasks ride on one fetch, but an ack never waits longer than ``ACK_BATCH_SECONDS``.
Deliveries made some other way (basic_get) keep kombu's own bookkeeping.
"""

import logging
from collections import deque
from dataclasses import dataclass, replace
from time import monotonic

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from redis.exceptions import NoScriptError

from platform_core.broker import ack_results
from platform_core.broker.ack_results import ResultWrite
from platform_core.broker.scripts import RESTORE, STORE_RESULT
from platform_core.errors import BROKER_ERRORS

logger = logging.getLogger("platform_core.broker.transport")

# Acknowledgements made on a channel that has since closed (its connection was lost):
# the process's next consuming channel sends them with its first fetch. Only removals
# from this process's own held lists, so any channel may carry them.
ORPHANED_ACKS: deque = deque()
# Held by this process but not to be run by it: fetched without the replicas' confirmation
# (channel._unconfirmed), or reserved by a channel whose connection was lost before it ran
# them (restore_unacked). The process's next fetch hands them back (RESTORE: only what is
# still held), under the same lease (leases.process_worker_id).
HAND_BACK: deque = deque()
# The longest an acknowledgement waits for a fetch to carry it: the window in which a
# worker killed after a task completed would have that task run again (its lease expires).
ACK_BATCH_SECONDS = 0.005


def _running_tags() -> set:
    """Delivery tags of the tasks this worker is executing or has handed to its pool
    (Celery's own records: a request the pool has not yet reported started is not in
    ``active_requests``, but it will run).

    fence: celery-worker-active-requests (platform_core/config/fences.py)."""
    from celery.worker import state  # a worker process; empty elsewhere

    in_pool = [r for r in list(state.reserved_requests) if r._apply_result is not None]
    return {r.message.delivery_tag for r in (*list(state.active_requests), *in_pool)}


@dataclass(frozen=True)
class Held:
    """Where a delivery is recorded: this worker's held list for its queue key."""

    key: str  # platform:held:<worker id>:<queue key>
    source: str  # the queue key it was taken from
    raw: bytes  # the item exactly as popped (LREM matches it byte for byte)
    result: ResultWrite | None = None  # stored with the acknowledgement


# fence: kombu-redis-qos (append, ack, reject, restore_unacked; virtual.QoS's bookkeeping)
class QoS(kombu_redis.QoS):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.held: dict[str, Held] = {}  # delivery tag -> its record
        self.pending_acks: deque[Held] = deque()  # acknowledged, not yet removed
        self.pending_since: float | None = None  # when the oldest pending ack was made

    # fence: kombu-legacy-unacked-index
    def restore_visible(self, *args, **kwargs):
        # Only a worker consuming its queue sweeps kombu's old unacked index: a process
        # that only asks (Flower, inspect) may not touch any site's messages (broker.acl).
        if self.channel._lease is not None:
            super().restore_visible(*args, **kwargs)

    def append(self, message, delivery_tag):
        if delivery_tag in self.held:  # recorded under this worker by the fetch
            virtual.QoS.append(self, message, delivery_tag)
        else:  # delivered some other way (basic_get): kombu's own record
            super().append(message, delivery_tag)

    def ack(self, delivery_tag):
        held = self.held.pop(delivery_tag, None)
        result = ack_results.take(self._delivered.get(delivery_tag))
        if held is None:
            self._store_now(result)
            super().ack(delivery_tag)
            return
        if result is not None:
            held = replace(held, result=result)
        virtual.QoS.ack(self, delivery_tag)
        if self.channel.closed:
            # A task that finished after its connection was lost: the next channel
            # of this process removes the record, if it comes before the sweep does.
            ORPHANED_ACKS.append(held)
            return
        if not self.pending_acks:
            self.pending_since = monotonic()
        self.pending_acks.append(held)
        if not self.channel.connection.defers_acks:
            self.flush_acks()

    def acks_due(self) -> bool:
        """Whether a pending acknowledgement has waited ``ACK_BATCH_SECONDS``."""
        since = self.pending_since
        return since is not None and monotonic() - since >= ACK_BATCH_SECONDS

    def _store_now(self, result: ResultWrite | None) -> None:
        """A result waiting for an acknowledgement that cannot carry it."""
        if result is not None:
            with self.channel.conn_or_acquire() as client:
                result.store(client)

    def reject(self, delivery_tag, requeue=False):
        self._store_now(ack_results.take(self._delivered.get(delivery_tag)))
        held = self.held.pop(delivery_tag, None)
        if held is None:
            super().reject(delivery_tag, requeue=requeue)
            return
        if requeue:
            self.restore([held])
        else:
            self.pending_acks.append(held)
            self.flush_acks()
        virtual.QoS.ack(self, delivery_tag)

    def restore_unacked(self, client=None):
        # Reserved, not acknowledged (e.g. at a warm shutdown): back to their queues. Not
        # what is running (a channel closed under its tasks when its connection was lost,
        # and the next one is already up): it stays held under this process's lease and
        # is acknowledged when done, through the next connection (ack: ORPHANED_ACKS).
        running = _running_tags()
        others = [tag for tag in self._delivered if tag not in self.held]
        mine = [tag for tag in self._delivered if tag in self.held and tag not in running]
        if client is None and self.channel.connection.client is None:
            # Closing after the broker was lost, with the connection already torn down:
            # nothing left to reach Redis with (kombu would fail building a pool and the
            # worker would die).
            self._strand(mine, "the connection is closed")
            return
        try:
            self.restore([self.held[tag] for tag in mine], client=client)
        except BROKER_ERRORS as exc:
            self._strand(mine, str(exc))
            return
        for tag in mine:
            del self.held[tag]
        with self.channel.conn_or_acquire(client) as client:
            for tag in others:
                self.restore_by_tag(tag, client=client)
        for tag in (*mine, *others):  # a running one's message carries its result (ack)
            self._delivered.pop(tag, None)

    def _strand(self, tags, why):
        """The broker is gone: what is not running is handed back by the next fetch
        (HAND_BACK)."""
        HAND_BACK.extend(self.held[tag] for tag in tags)
        logger.warning(
            "%d delivery(ies) not handed back now (%s): handed back by the next connection",
            len(tags),
            why,
        )

    def restore(self, records, client=None):
        """Hand records back to the front of their queues, marked redelivered (one script)."""
        if not records:
            return
        keys = [key for held in records for key in (held.key, held.source)]
        with self.channel.conn_or_acquire(client) as client:
            RESTORE(client, keys, [held.raw for held in records])

    def put_back(self, acks) -> None:
        """Acknowledgements taken for a fetch or a flush that failed: sent again next time."""
        if acks:
            self.pending_acks.extendleft(reversed(acks))
            self.pending_since = self.pending_since or monotonic()

    def take_pending_acks(self) -> list[Held]:
        self.pending_since = None
        acks = []
        for pending in (self.pending_acks, ORPHANED_ACKS):
            while pending:
                acks.append(pending.popleft())
        return acks

    def flush_acks(self):
        """Send the pending acknowledgements (and the results they carry) in one pipeline:
        at the end of a loop turn for a channel whose fetch is not coming (e.g. waiting
        in BLMOVE while its tasks run), or outside an event loop."""
        acks = self.take_pending_acks()
        if not acks:
            return
        wanted = self.channel.min_replicas
        try:
            try:
                confirmed = self._send_acks(acks, wanted)
            except NoScriptError:  # this Redis restarted or lost its scripts: load, again
                with self.channel.conn_or_acquire() as client:
                    STORE_RESULT.load(client)
                confirmed = self._send_acks(acks, wanted)
        except BaseException:
            self.put_back(acks)
            raise
        if wanted and confirmed < wanted:
            # Removed on the primary only: a failover now would bring them back as held
            # (and run them again once this worker stops). Removed again later.
            ORPHANED_ACKS.extend(acks)

    def _send_acks(self, acks, wanted):
        with self.pipe_or_acquire() as pipe:
            for held in acks:
                if held.result is not None:
                    pipe.execute_command(*held.result.command())
                pipe.lrem(held.key, 1, held.raw)
            if wanted:
                pipe.execute_command("WAIT", wanted, self.channel.replica_timeout_ms)
            return pipe.execute()[-1]
