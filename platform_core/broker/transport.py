"""kombu's Redis transport, hardened, with fewer round trips per message.

Stock kombu parses each popped item inside the worker's event loop; an item that is
not a JSON envelope (anyone can LPUSH into a queue) raises there and the worker dies
with "Unrecoverable error". Here such an item is logged, counted and dropped.

Stock kombu also builds a new redis-py client object for every publish (~60 µs of
pure Python: the client copies its whole response-callback table); here a channel
keeps one per connection pool.

Deliveries are recorded per worker under a lease (platform_core.broker.leases), not in
kombu's time-windowed unacked index: a message goes back to its queue when its worker
dies, never while it lives. In a worker's event loop, stock kombu spends three round
trips per message: BRPOP, then ZADD+HSET to record the delivery, then ZREM+HDEL to
acknowledge it. Here the acknowledgements of one loop turn are kept until the next
fetch, and one script (redis_scripts.FETCH) acknowledges them and moves as many
messages as the prefetch window has room for into this worker's held lists,
atomically. An idle worker waits with BLMOVE, which records the message in the same
step as the pop. Acknowledgements that cannot ride along (no fetch this turn) go in
one pipeline at the end of the turn, before the loop sleeps.

A message due later than delays.HORIZON_SECONDS is parked in its queue's delayed set
instead of being pushed onto the queue (by the platform's producers) or held in memory
(by a worker given one by a plain Celery client); each consuming channel runs a
promoter that moves due messages to the front of its queues (platform_core.broker.delays).

kombu's own unacked index is still swept with its old window, so messages a previous
version left there go back to their queues once (the upgrade path).

Every kombu internal replaced here is a record in platform_core/config/fences.py, named
at its place below (``fence: <id>``); tests/unit/test_upstream_fence.py fails when the
installed kombu is not the version they were verified with.
"""

import logging
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from time import monotonic

import redis
from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from platform_core.broker.delays import Promoter, delay_of, should_park
from platform_core.broker.leases import DEFAULT_LEASE_SECONDS, DEFAULT_SWEEP_SECONDS, Lease
from platform_core.broker.message_checks import BadMessage, check_envelope
from platform_core.broker.rejections import report_rejection
from platform_core.broker.scripts import (
    FETCH,
    LEASES,
    PARK,
    delayed_key,
    held_key,
)
from platform_core.broker.sent_stamp import stamp

transport_logger = logging.getLogger("platform_core.broker.transport")

# Errors that mean the broker, not the item, failed: they go on to kombu's and Celery's
# connection handling. Anything else raised while one popped item is handled came from
# that item's content (kombu counts even KeyError as a connection error).
BROKER_ERRORS = (redis.RedisError, OSError)

# Acknowledgements made on a channel that has since closed (its connection was lost):
# the process's next consuming channel sends them with its first fetch. Only removals
# from this process's own held lists, so any channel may carry them.
ORPHANED_ACKS: deque = deque()
# After a script error (e.g. Redis out of memory), wait before asking again.
SCRIPT_RETRY_SECONDS = 1.0


@dataclass(frozen=True)
class Held:
    """Where a delivery is recorded: this worker's held list for its queue key."""

    key: str  # platform:held:<worker id>:<queue key>
    source: str  # the queue key it was taken from
    raw: bytes  # the item exactly as popped (LREM matches it byte for byte)


# fence: kombu-redis-qos (append, ack, reject, restore_unacked; virtual.QoS's bookkeeping)
class QoS(kombu_redis.QoS):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.held: dict[str, Held] = {}  # delivery tag -> its record
        self.pending_acks: deque[Held] = deque()  # acknowledged, not yet removed

    def append(self, message, delivery_tag):
        if delivery_tag in self.held:  # recorded under this worker by the fetch
            virtual.QoS.append(self, message, delivery_tag)
        else:  # delivered some other way (basic_get): kombu's own record
            super().append(message, delivery_tag)

    def ack(self, delivery_tag):
        held = self.held.pop(delivery_tag, None)
        if held is None:
            super().ack(delivery_tag)
            return
        virtual.QoS.ack(self, delivery_tag)
        if self.channel.closed:
            # A task that finished after its connection was lost: the next channel
            # of this process removes the record, if it comes before the sweep does.
            ORPHANED_ACKS.append(held)
            return
        self.pending_acks.append(held)
        if not self.channel.connection.defers_acks:
            self.flush_acks()

    def reject(self, delivery_tag, requeue=False):
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
        # Reserved, not acknowledged (e.g. at a warm shutdown): back to their queues.
        others = [tag for tag in self._delivered if tag not in self.held]
        mine = [tag for tag in self._delivered if tag in self.held]
        if client is None and self.channel.connection.client is None:
            # Closing after the broker was lost, with the connection already torn down:
            # nothing left to reach Redis with (kombu would fail building a pool and the
            # worker would die). Kept: this worker's lease expiry hands them back.
            transport_logger.warning(
                "%d delivery(ies) not handed back now: the connection is closed", len(mine)
            )
            return
        try:
            self.restore([self.held[tag] for tag in mine], client=client)
        except BROKER_ERRORS as exc:
            # Kept: a task still running acknowledges later (ORPHANED_ACKS); the rest
            # goes back when this worker's lease expires.
            transport_logger.warning("%d delivery(ies) not handed back now: %s", len(mine), exc)
            return
        for tag in mine:
            del self.held[tag]
        with self.channel.conn_or_acquire(client) as client:
            for tag in others:
                self.restore_by_tag(tag, client=client)
        self._delivered.clear()

    def restore(self, records, client=None):
        """Move records from this worker's held lists back to the front of their queues."""
        if not records:
            return
        with self.pipe_or_acquire(client=client) as pipe:
            for held in records:
                pipe.lrem(held.key, 1, held.raw)
                pipe.rpush(held.source, _marked_redelivered(held.raw))
            pipe.execute()

    def take_pending_acks(self) -> list[Held]:
        acks = []
        for pending in (self.pending_acks, ORPHANED_ACKS):
            while pending:
                acks.append(pending.popleft())
        return acks

    def flush_acks(self):
        acks = self.take_pending_acks()
        if not acks:
            return
        try:
            with self.pipe_or_acquire() as pipe:
                for held in acks:
                    pipe.lrem(held.key, 1, held.raw)
                pipe.execute()
        except BaseException:
            self.pending_acks.extendleft(reversed(acks))
            raise


# fence: kombu-redis-held-format (as kombu's Channel._do_restore_message marks it)
def _marked_redelivered(raw: bytes) -> bytes:
    """The item with delivery_info.redelivered set, as kombu restores it."""
    try:
        envelope = loads(bytes_to_str(raw))
        envelope["properties"]["delivery_info"]["redelivered"] = True
        (envelope.get("headers") or {})["redelivered"] = True
        return dumps(envelope).encode()
    except Exception:  # not ours to judge here: the consumer rejects it on delivery
        return raw


# fence: kombu-redis-held-format (virtual.Message reads the envelope)
class Message(virtual.Message):
    def __init__(self, payload, channel=None, **kwargs):
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except ValueError as exc:  # binascii.Error: the body is not the base64 it claims
            encoding = payload["properties"].get("body_encoding")
            raise BadMessage("bad-envelope", "body", f"is not valid {encoding}: {exc}") from None


# fence: kombu-redis-poller-acks
class MultiChannelPoller(kombu_redis.MultiChannelPoller):
    def on_poll_start(self):
        super().on_poll_start()  # fetches carry the acknowledgements with them
        for channel in self._channels:
            channel.qos.flush_acks()


class Channel(kombu_redis.Channel):
    QoS = QoS
    Message = Message
    from_transport_options = (
        *kombu_redis.Channel.from_transport_options,
        "lease_seconds",
        "lease_sweep_seconds",
    )
    # The platform sets both from PLATFORM_LEASE_* (celery_factory).
    lease_seconds = DEFAULT_LEASE_SECONDS
    lease_sweep_seconds = DEFAULT_SWEEP_SECONDS
    _lease = None
    _promoter = None
    _sync_client = None
    _fetch_command = "BRPOP"
    _blmove_source = None
    _queue_may_have_more = True
    _script_retry_at = 0.0

    def __init__(self, *args, **kwargs):
        self._no_ack_queues = set()  # consumed without acknowledgements: never recorded
        super().__init__(*args, **kwargs)

    # fence: kombu-redis-consume
    def basic_consume(self, queue, *args, **kwargs):
        no_ack = kwargs.get("no_ack", args[0] if args else False)
        (self._no_ack_queues.add if no_ack else self._no_ack_queues.discard)(queue)
        consumer_tag = super().basic_consume(queue, *args, **kwargs)
        if not no_ack:
            if self._lease is None:
                self._lease = Lease(
                    self._create_client(), self.lease_seconds, self.lease_sweep_seconds
                )
            sources = [self._q_for_pri(queue, pri) for pri in self.priority_steps]
            self._lease.take(sources)
            if self._promoter is None:
                self._promoter = Promoter(self._create_client(), f"promoter {queue}")
            self._promoter.watch(sources)
        return consumer_tag

    # fence: kombu-redis-publish
    def _put(self, queue, message, **kwargs):
        stamp(message)  # the queue metrics' "oldest message" age starts here
        delay = delay_of(message)
        if not should_park(delay):
            return super()._put(queue, message, **kwargs)
        # Due later than the horizon: into the delayed set, not onto the queue.
        key = delayed_key(self._q_for_pri(queue, self._get_message_priority(message, False)))
        args = (PARK, 1, key, int(delay * 1000), dumps(message))
        publish_batch = kwargs.pop("_publish_batch", None)
        if publish_batch is not None:
            publish_batch.add("eval", *args)
            return
        with self.conn_or_acquire() as client:
            client.eval(*args)

    # fence: kombu-redis-purge
    def _purge(self, queue):
        purged = super()._purge(queue)
        with self.conn_or_acquire() as client:
            with client.pipeline() as pipe:
                for pri in self.priority_steps:
                    key = delayed_key(self._q_for_pri(queue, pri))
                    pipe.zcard(key).delete(key)
                return purged + sum(pipe.execute()[::2])

    # fence: kombu-redis-fetch
    def _brpop_start(self, timeout=None):
        if monotonic() < self._script_retry_at:
            return  # Redis refused the script a moment ago
        if self._lease is None:
            return super()._brpop_start(timeout)  # no-ack consumers only: nothing to record
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        keys, record = [], []
        for pri in self.priority_steps:
            for queue in queues:
                keys.append(self._q_for_pri(queue, pri))
                # A no-ack consumer (control replies, e.g. Flower's inspect) never
                # acknowledges: recording its deliveries would leave them held.
                record.append("0" if queue in self._no_ack_queues else "1")
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        if not (self._queue_may_have_more or self.qos.pending_acks) and "1" in record:
            # Idle: wait for the next message, moved into our held list as it is popped.
            # Only one key can be waited on; the others are fetched after the wait.
            source = keys[record.index("1")]
            self._fetch_command, self._blmove_source = "BLMOVE", source
            self._queue_may_have_more = True  # after the wait, fetch every key once
            wait = self.brpop_timeout if timeout is None else timeout
            held = held_key(self._lease.worker_id, source)
            self.client.connection.send_command("BLMOVE", source, held, "RIGHT", "LEFT", wait)
            return
        room = self.qos.can_consume_max_estimate() or 100  # prefetch 0: no limit
        acks = self.qos.take_pending_acks()
        self._fetch_command = "EVAL"
        try:
            self.client.connection.send_command(
                "EVAL",
                FETCH,
                1 + len(keys),
                LEASES,
                *keys,
                self._lease.worker_id,
                room,
                "".join(record),
                len(acks),
                *(part for held in acks for part in (held.key, held.raw)),
            )
        except BaseException:
            self.qos.pending_acks.extendleft(reversed(acks))
            self._in_poll = None
            raise

    # fence: kombu-redis-client
    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool = self.pool  # a new pool after a reconnect or fork gets a new client
        if self._sync_client is None or self._sync_client.connection_pool is not pool:
            self._sync_client = self._create_client()
        yield self._sync_client

    def _brpop_read(self, **options):
        # fence: kombu-redis-read. kombu's _brpop_read (copied), reading any of the three
        # replies (BRPOP for no-ack consumers, BLMOVE while idle, the fetch script),
        # envelopes parsed under a guard.
        command = self._fetch_command
        try:
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except self.ResponseError as exc:
                if command != "EVAL":
                    raise
                self._on_script_error(exc)
                raise kombu_redis.Empty() from exc
            if command == "EVAL":
                items = [reply[i : i + 3] for i in range(0, len(reply or ()), 3)]
                self._queue_may_have_more = bool(items)
            elif command == "BLMOVE":
                items = [(self._blmove_source, reply, 1)] if reply is not None else []
            else:
                items = [(*reply, 0)] if reply else []
            if not items:
                raise kombu_redis.Empty()
            for key, item, recorded in items:
                key = bytes_to_str(key)
                held = Held(held_key(self._lease.worker_id, key), key, item) if recorded else None
                self._deliver_item(key.rsplit(self.sep, 1)[0], item, held)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _deliver_item(self, dest, item, held):
        self._queue_cycle.rotate(dest)
        envelope = None
        try:
            envelope = _parse_envelope(item)
            check_envelope(envelope)
            tag = envelope["properties"]["delivery_tag"]
            if tag in self.qos._delivered and tag not in self.qos._dirty:  # _dirty: acked
                raise BadMessage(
                    "bad-envelope",
                    "properties.delivery_tag",
                    "is the tag of another message this worker holds (a copied message)",
                )
        except BadMessage as exc:
            self._forget(held)
            report_rejection(dest, exc.reason, str(exc), **_context(envelope, item))
            return
        if held is not None:
            delay = delay_of(envelope)
            if should_park(delay):  # e.g. a far ETA from a plain Celery client
                self._park_held(held, delay, envelope)
                return
            self.qos.held[tag] = held
        try:
            self.connection._deliver(envelope, dest)
        except BROKER_ERRORS:
            raise
        except Exception as exc:
            # The consumer rejects what it finds wrong itself; this is what neither
            # layer's checks foresaw. It must not reach kombu's connection handling.
            if tag in self.qos._delivered:
                self.qos.ack(tag)
            else:
                self._forget(self.qos.held.pop(tag, None))
            reason = exc.reason if isinstance(exc, BadMessage) else "unexpected"
            detail = str(exc) if isinstance(exc, BadMessage) else f"{type(exc).__name__}: {exc}"
            report_rejection(dest, reason, detail, **_context(envelope, item))

    def _park_held(self, held, delay, envelope):
        """Move a delivery due later than the horizon from our held list to its delayed set."""
        with self.conn_or_acquire() as client:
            due = client.eval(
                PARK, 2, delayed_key(held.source), held.key, int(delay * 1000), held.raw
            )
        if due >= 0:
            transport_logger.info(
                "Task %s due in %.0f s parked in the delayed set of %s",
                _context(envelope, held.raw).get("id", "?"),
                delay,
                held.source,
            )

    def _forget(self, held):
        """Drop a rejected item from this worker's held list (it is not run again)."""
        if held is not None:
            self.qos.pending_acks.append(held)
            if not self.connection.defers_acks:
                self.qos.flush_acks()

    def _on_script_error(self, exc):
        if str(exc).startswith("LEASELOST"):
            self._lease.renew_after_loss()
            return
        # Refused as a whole (out of memory, busy, read-only): nothing was popped.
        self._script_retry_at = monotonic() + SCRIPT_RETRY_SECONDS
        transport_logger.error(
            "Redis refused the fetch script: %s; retrying in %.0f s", exc, SCRIPT_RETRY_SECONDS
        )

    def close(self):
        # Acknowledged work must not be restored (and run again) by a restart.
        if not self.closed:
            try:
                self.qos.flush_acks()
            except self.connection_errors as exc:
                transport_logger.warning(
                    "%d acknowledgement(s) not recorded (%s): the next connection records "
                    "them, unless this worker's lease expires first",
                    len(self.qos.pending_acks),
                    exc,
                )
                ORPHANED_ACKS.extend(self.qos.take_pending_acks())
        super().close()  # reserved messages go back to their queues here
        if self._promoter is not None:
            self._promoter.stop()
        if self._lease is not None:
            self._lease.release()


# fence: kombu-priority-keys
def priority_keys(queue: str) -> dict[int, str]:
    """The Redis list of each priority step of ``queue`` (kombu's Channel._q_for_pri)."""
    return {pri: f"{queue}{Channel.sep}{pri}" if pri else queue for pri in Channel.priority_steps}


def _parse_envelope(item: bytes) -> dict:
    try:
        envelope = loads(bytes_to_str(item))
    except Exception as exc:  # parsing touches nothing but the item (RecursionError too)
        raise BadMessage("not-an-envelope", "envelope", f"is not JSON ({exc})") from None
    if not isinstance(envelope, dict):
        kind = {type(None): "null", list: "array", str: "string", bool: "boolean"}.get(
            type(envelope), "number"
        )
        raise BadMessage("not-an-envelope", "envelope", f"is a JSON {kind}, not an object")
    return envelope


def _context(envelope, item: bytes) -> dict:
    """What the rejection line can say about the item besides its queue."""
    headers = envelope.get("headers") if isinstance(envelope, dict) else None
    context = {}
    if isinstance(headers, dict):
        for name in ("task", "id"):
            if isinstance(headers.get(name), str):
                context[name] = headers[name][:200]
    return {**context, "bytes": len(item)}


# fence: kombu-redis-poller-acks (the poller, and acks deferred only inside an event loop)
class Transport(kombu_redis.Transport):
    Channel = Channel
    # Acks wait for the end of the event-loop turn only when there is a loop to end it.
    defers_acks = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cycle = MultiChannelPoller()

    def register_with_event_loop(self, connection, loop):
        super().register_with_event_loop(connection, loop)
        self.defers_acks = True


def install() -> None:
    """Make redis:// URLs use this transport in this process (kombu's alias registry).

    fence: kombu-transport-alias
    """
    TRANSPORT_ALIASES["redis"] = "platform_core.broker.transport:Transport"
