"""kombu's Redis transport, hardened, with fewer round trips per message.

Stock kombu parses each popped item inside the worker's event loop; an item that is
not a JSON envelope (anyone can LPUSH into a queue) raises there and the worker dies
with "Unrecoverable error". Here such an item is logged, counted and dropped.

Stock kombu also builds a new redis-py client object for every publish (~60 µs of
pure Python: the client copies its whole response-callback table); here a channel
keeps one per connection pool.

In a worker's event loop, stock kombu spends three round trips per message: BRPOP,
then ZADD+HSET to record the delivery, then ZREM+HDEL to acknowledge it. Here the
acknowledgements of one loop turn are kept until the next fetch, and one script
(redis_scripts.ACK_AND_FETCH) acknowledges them, pops as many messages as the
prefetch window has room for and records them, atomically. BRPOP is only used to
wait on an empty queue. Acknowledgements that cannot ride along (no fetch this turn)
go in one pipeline at the end of the turn, before the loop sleeps.
"""

import logging
from collections import deque
from contextlib import contextmanager
from time import monotonic, time

import redis
from kombu.transport import TRANSPORT_ALIASES, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from platform_core.message_checks import BadMessage, check_envelope
from platform_core.redis_scripts import ACK_AND_FETCH
from platform_core.rejections import report_rejection

transport_logger = logging.getLogger("platform_core.transport")

# Errors that mean the broker, not the item, failed: they go on to kombu's and Celery's
# connection handling. Anything else raised while one popped item is handled came from
# that item's content (kombu counts even KeyError as a connection error).
BROKER_ERRORS = (redis.RedisError, OSError)

# Items larger than this are recorded by Python (as stock kombu does), not decoded
# inside Redis, where a huge JSON document would block every other client.
LARGEST_ITEM_DECODED_IN_REDIS = 1024 * 1024
# After a script error (e.g. Redis out of memory), wait before asking again.
SCRIPT_RETRY_SECONDS = 1.0


class QoS(kombu_redis.QoS):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending_acks = deque()  # acknowledged, not yet removed from the index
        self.recorded_by_script = set()

    def append(self, message, delivery_tag):
        if delivery_tag in self.recorded_by_script:
            self.recorded_by_script.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)
            return
        super().append(message, delivery_tag)

    def ack(self, delivery_tag):
        if not self.channel.connection.defers_acks:
            super().ack(delivery_tag)
            return
        self.pending_acks.append(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def take_pending_acks(self):
        tags = []
        while self.pending_acks:
            tags.append(self.pending_acks.popleft())
        return tags

    def flush_acks(self):
        tags = self.take_pending_acks()
        if not tags:
            return
        try:
            with self.pipe_or_acquire() as pipe:
                for tag in tags:
                    self._remove_from_indices(tag, pipe)
                pipe.execute()
        except BaseException:
            self.pending_acks.extendleft(reversed(tags))
            raise


class Message(virtual.Message):
    def __init__(self, payload, channel=None, **kwargs):
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except ValueError as exc:  # binascii.Error: the body is not the base64 it claims
            encoding = payload["properties"].get("body_encoding")
            raise BadMessage("bad-envelope", "body", f"is not valid {encoding}: {exc}") from None


class MultiChannelPoller(kombu_redis.MultiChannelPoller):
    def on_poll_start(self):
        super().on_poll_start()  # fetches carry the acknowledgements with them
        for channel in self._channels:
            channel.qos.flush_acks()


class Channel(kombu_redis.Channel):
    QoS = QoS
    Message = Message
    _sync_client = None
    _fetch_command = "BRPOP"
    _queue_may_have_more = True
    _script_retry_at = 0.0
    _script_unsupported = False

    def __init__(self, *args, **kwargs):
        self._no_ack_queues = set()  # consumed without acknowledgements: never recorded
        super().__init__(*args, **kwargs)

    def _wants_script(self):
        if self._script_unsupported or self.global_keyprefix:
            return False
        return self._queue_may_have_more or bool(self.qos.pending_acks)

    def _brpop_start(self, timeout=None):
        if monotonic() < self._script_retry_at:
            return  # Redis refused the script a moment ago; BRPOP could lose items
        if not self._wants_script():
            self._fetch_command = "BRPOP"
            return super()._brpop_start(timeout)
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        keys, record = [], []
        for pri in self.priority_steps:
            for queue in queues:
                keys.append(self._q_for_pri(queue, pri))
                # A no-ack consumer (control replies, e.g. Flower's inspect) never
                # acknowledges: recording its deliveries would leave them in the index.
                record.append("0" if queue in self._no_ack_queues else "1")
        room = self.qos.can_consume_max_estimate() or 100  # prefetch 0: no limit
        acks = self.qos.take_pending_acks()
        self._fetch_command = "EVAL"
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        try:
            self.client.connection.send_command(
                "EVAL",
                ACK_AND_FETCH,
                2 + len(keys),
                self.unacked_index_key,
                self.unacked_key,
                *keys,
                time(),
                room,
                LARGEST_ITEM_DECODED_IN_REDIS,
                "".join(record),
                *acks,
            )
        except BaseException:
            self.qos.pending_acks.extendleft(reversed(acks))
            self._in_poll = None
            raise

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
        # kombu 5.7's _brpop_read, reading either reply, envelopes parsed under a guard.
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
            else:
                items = [(*reply, None)] if reply else []
            self._queue_may_have_more = bool(items)
            if not items:
                raise kombu_redis.Empty()
            for key, item, recorded_tag in items:
                self._deliver_item(bytes_to_str(key).rsplit(self.sep, 1)[0], item, recorded_tag)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def basic_consume(self, queue, *args, **kwargs):
        no_ack = kwargs.get("no_ack", args[0] if args else False)
        (self._no_ack_queues.add if no_ack else self._no_ack_queues.discard)(queue)
        return super().basic_consume(queue, *args, **kwargs)

    def _deliver_item(self, dest, item, recorded_tag):
        self._queue_cycle.rotate(dest)
        recorded_tag = None if recorded_tag is None else bytes_to_str(recorded_tag)
        envelope = None
        try:
            envelope = _parse_envelope(item)
            check_envelope(envelope)
            tag = envelope["properties"]["delivery_tag"]
            if tag in self.qos._delivered and tag != recorded_tag:
                raise BadMessage(
                    "bad-envelope",
                    "properties.delivery_tag",
                    "is the tag of another message this worker holds (a copied message)",
                )
        except BadMessage as exc:
            self._forget_record(recorded_tag)
            report_rejection(dest, exc.reason, str(exc), **_context(envelope, item))
            return
        if recorded_tag is not None:
            if tag == recorded_tag:
                self.qos.recorded_by_script.add(recorded_tag)
            else:  # Lua and Python read the envelope differently: Python's record wins
                self._forget_record(recorded_tag)
        try:
            self.connection._deliver(envelope, dest)
        except BROKER_ERRORS:
            raise
        except Exception as exc:
            # The consumer rejects what it finds wrong itself; this is what neither
            # layer's checks foresaw. It must not reach kombu's connection handling.
            self.qos.recorded_by_script.discard(tag)
            if tag in self.qos._delivered:
                self.qos.ack(tag)
            else:
                self._forget_record(tag if tag == recorded_tag else None)
            reason = exc.reason if isinstance(exc, BadMessage) else "unexpected"
            detail = str(exc) if isinstance(exc, BadMessage) else f"{type(exc).__name__}: {exc}"
            report_rejection(dest, reason, detail, **_context(envelope, item))

    def _forget_record(self, tag):
        if tag is not None:
            self.qos._remove_from_indices(tag).execute()

    def _on_script_error(self, exc):
        if "shebang" in str(exc) or "unknown command" in str(exc):
            self._script_unsupported = True  # Redis < 7: stock BRPOP from now on
            transport_logger.warning("Redis cannot run the fetch script (%s); using BRPOP", exc)
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
                    "%d acknowledgement(s) not recorded (%s): those tasks will be "
                    "delivered again after the visibility timeout",
                    len(self.qos.pending_acks),
                    exc,
                )
        super().close()


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
    """Make redis:// URLs use this transport in this process (kombu's alias registry)."""
    TRANSPORT_ALIASES["redis"] = "platform_core.transport:Transport"
