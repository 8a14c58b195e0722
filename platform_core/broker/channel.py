"""Fetching and delivering: kombu's Redis channel with fewer round trips per message.

In a worker's event loop, stock kombu spends three round trips per message: BRPOP, then
ZADD+HSET to record the delivery, then ZREM+HDEL to acknowledge it. Here one script
(lua/fetch.lua, called by SHA) applies the last turn's acknowledgements and moves as many
messages as the prefetch window has room for into this worker's held lists, atomically,
under the worker's lease (leases). An idle worker waits with BLMOVE, which records the
message in the same step as the pop.

Each popped item is parsed under a guard (envelope): stock kombu parses it inside the
event loop, where an item that is not a JSON envelope (anyone can LPUSH into a queue)
kills the worker with "Unrecoverable error". Here it is logged, counted and dropped.

A message due later than delays.HORIZON_SECONDS is parked in its queue's delayed set by
the worker it reaches first, instead of being held in that worker's memory; each
consuming channel runs a promoter that moves due messages to the front of its queues
(delays).

Stock kombu also builds a new redis-py client object for every publish (~60 µs of pure
Python: the client copies its whole response-callback table); here a channel keeps one
per connection pool.
"""

import logging
import re
from contextlib import contextmanager
from time import monotonic

import redis
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps

from platform_core.broker import envelope, keys, rate_limits
from platform_core.broker.delays import Promoter, delay_of, should_park
from platform_core.broker.leases import Lease
from platform_core.broker.message_checks import check_envelope
from platform_core.broker.qos import ACK_BATCH_SECONDS, HAND_BACK, ORPHANED_ACKS, Held, QoS
from platform_core.broker.rate_limits import Limits
from platform_core.broker.rejections import report_rejection
from platform_core.broker.scripts import ENQUEUE_ONCE, ENQUEUE_UNIQUE, FETCH, PARK, RELEASE_UNIQUE
from platform_core.broker.sent_stamp import stamp
from platform_core.broker.unique import record_holder, unique_of
from platform_core.config.environment import DEFAULTS
from platform_core.errors import (
    BROKER_ERRORS,
    BadMessage,
    LeaseLost,
    NotReplicated,
    Rejection,
    SendNotAllowed,
)

logger = logging.getLogger("platform_core.broker.transport")

# A message whose headers carry "<name>\n<occurrence ms>" under this key is enqueued only
# if that occurrence is later than the last one enqueued under the name (ENQUEUE_ONCE):
# how a periodic job's due time is sent once, whichever beat sends it (tasks.beat).
ONCE_HEADER = "platform_once"
# Redis' refusal of a write when fewer replicas than min-replicas-to-write are connected.
_NOREPLICAS = re.compile(r"(^|caused error: )NOREPLICAS ")
# After a script error (e.g. Redis out of memory), wait before asking again.
SCRIPT_RETRY_SECONDS = 1.0


def _once_of(message: dict) -> tuple[str, int] | None:
    """The (name, occurrence ms) a message's ONCE_HEADER carries, if it carries one."""
    headers = message.get("headers")
    value = headers.get(ONCE_HEADER) if isinstance(headers, dict) else None
    if not isinstance(value, str):
        return None
    name, _, occurrence = value.rpartition("\n")
    return (name, int(occurrence)) if name and occurrence.isdigit() else None


class Channel(kombu_redis.Channel):
    QoS = QoS
    Message = envelope.Message
    from_transport_options = (
        *kombu_redis.Channel.from_transport_options,
        "lease_seconds",
        "lease_sweep_seconds",
        "min_replicas",
        "replica_timeout_ms",
    )
    # The platform sets these from PLATFORM_LEASE_* and PLATFORM_BROKER_* (celery_factory).
    lease_seconds = DEFAULTS.lease_seconds
    lease_sweep_seconds = DEFAULTS.lease_sweep_seconds
    min_replicas = DEFAULTS.broker_min_replicas
    replica_timeout_ms = DEFAULTS.broker_replica_timeout_ms
    _lease = None
    _promoter = None
    _limits = None  # rate_limits.Limits of the consumed queue
    _sync_client = None
    _fetch_command = "BRPOP"
    _blmove_source = None
    _queue_may_have_more = True
    _script_retry_at = 0.0
    _acks_in_flight = ()  # sent with the fetch being read; back to pending if it failed
    _wait_in_flight = False  # a WAIT follows the fetch on the connection (min_replicas)
    _fetch_waits = False  # this loop turn's fetch waits for more room (_fetch_can_wait)
    _wake_pending = False  # a loop turn is due when the oldest pending ack is

    def __init__(self, *args, **kwargs):
        self._no_ack_queues = set()  # consumed without acknowledgements: never recorded
        # Bindings this producer declared but may not record in Redis (broker.acl):
        # exchange -> [(routing key, pattern, queue)], routed by as if recorded.
        self._local_bindings = {}
        super().__init__(*args, **kwargs)

    # fence: kombu-redis-consume
    def basic_consume(self, queue, *args, **kwargs):
        no_ack = kwargs.get("no_ack", args[0] if args else False)
        (self._no_ack_queues.add if no_ack else self._no_ack_queues.discard)(queue)
        consumer_tag = super().basic_consume(queue, *args, **kwargs)
        if not no_ack:
            if self._lease is None:
                self._lease = Lease(
                    self._thread_client(), self.lease_seconds, self.lease_sweep_seconds
                )
            sources = [self._q_for_pri(queue, pri) for pri in self.priority_steps]
            self._lease.take(sources)
            if self._limits is None:
                self._limits = Limits(queue)
            if self._promoter is None:
                self._promoter = Promoter(self._thread_client(), f"promoter {queue}", self._limits)
            self._promoter.watch(sources)
        return consumer_tag

    def _thread_client(self):
        """A client on a pool of its own, for a thread of this channel (lease, promoter):
        kombu disconnects the channel's pools from the main thread when its connection is
        lost, and a read in flight in another thread then fails on a closed socket. Its
        owner disconnects it when it stops."""
        return self.Client(connection_pool=self._private_pool())

    def _private_pool(self):
        return self._get_pool()

    # fence: kombu-redis-publish
    def _put(self, queue, message, **kwargs):
        try:
            return self._enqueue(queue, message, **kwargs)
        except redis.exceptions.NoPermissionError as exc:
            raise self._not_allowed(queue) from exc

    def _size(self, queue):
        # A producer declares the queue it sends to, which reads its length first.
        try:
            return super()._size(queue)
        except redis.exceptions.NoPermissionError as exc:
            raise self._not_allowed(queue) from exc

    def _not_allowed(self, queue) -> SendNotAllowed:
        return SendNotAllowed(queue, self.connection.client.userid)  # the URL's user

    def _enqueue(self, queue, message, **kwargs):
        # Every message goes onto its queue, however far its due time: a producer needs
        # only to push to the queues it may send to (broker.acl), never to read or write
        # their rooms. A worker parks a far one on arrival (_park_held).
        stamp(message)  # the queue metrics' "oldest message" age starts here
        once = _once_of(message)
        if once is not None:
            kwargs.pop("_publish_batch", None)  # sent alone: its reply says if it was sent
            self._put_once(queue, message, *once)
            return
        unique = unique_of(message)
        if unique is not None:
            kwargs.pop("_publish_batch", None)  # sent alone: its reply names the holder
            self._put_unique(queue, message, *unique)
            return
        if not self.min_replicas or queue in self._expires:  # _expires: control replies
            return super()._put(queue, message, **kwargs)
        key = self._q_for_pri(queue, self._get_message_priority(message, False))
        payload = dumps(message)
        self._replicated(queue, ("LPUSH", key, payload), [("LREM", key, 1, payload)])

    def _put_once(self, queue, message, name, occurrence):
        key = self._q_for_pri(queue, self._get_message_priority(message, False))
        payload = dumps(message)
        keys_args = ((keys.ONCE,), (name, occurrence, payload, key))
        if self.min_replicas:
            undo = [("LREM", key, 1, payload)]
            sent = self._replicated(queue, ENQUEUE_ONCE.command(*keys_args), undo, ENQUEUE_ONCE)
        else:
            with self.conn_or_acquire() as client:
                sent = ENQUEUE_ONCE(client, *keys_args)
        if not sent:
            logger.warning(
                "%s: occurrence %s was enqueued before (by another sender); not again",
                name,
                occurrence,
            )

    def _put_unique(self, queue, message, name, window_ms):
        key = self._q_for_pri(queue, self._get_message_priority(message, False))
        payload = dumps(message)
        task_id = message["headers"].get("id")
        unique_key = keys.room(queue).unique(name)
        keys_args = ((unique_key,), (task_id, window_ms, payload, key))
        if self.min_replicas:
            # Withdrawn if not replicated: the message, and the key if this send took it.
            undo = [("LREM", key, 1, payload), RELEASE_UNIQUE.command((unique_key,), (task_id,))]
            command = ENQUEUE_UNIQUE.command(*keys_args)
            holder = self._replicated(queue, command, undo, ENQUEUE_UNIQUE)
        else:
            with self.conn_or_acquire() as client:
                holder = ENQUEUE_UNIQUE(client, *keys_args)
        record_holder(bytes_to_str(holder))

    @property
    def supports_batch_publish(self):
        # kombu's batches (Producer.batch) pipeline many publishes without a reply each;
        # an enqueue that must be confirmed by replicas is sent, and waited for, alone.
        return not self.min_replicas

    def _replicated(self, queue, command, undo, script=None):
        """Run ``command`` (an enqueue); its reply once ``min_replicas`` replicas hold it
        (WAIT, in the same round trip and on the same connection). If they do not within
        ``replica_timeout_ms``, the enqueue is withdrawn (``undo``: commands) and NotReplicated
        raised: the caller is told, not left believing in a copy a failover would lose."""
        with self.conn_or_acquire() as client:
            for attempt in (1, 2):
                with client.pipeline(transaction=False) as pipe:
                    pipe.execute_command(*command)
                    pipe.execute_command("WAIT", self.min_replicas, self.replica_timeout_ms)
                    try:
                        reply, confirmed = pipe.execute()
                        break
                    except redis.exceptions.NoScriptError:
                        if script is None or attempt == 2:
                            raise
                        script.load(client)  # this Redis does not know it yet: again
                    except redis.exceptions.ResponseError as exc:
                        # As Redis says it, or inside redis-py's pipeline message.
                        if not _NOREPLICAS.search(str(exc)):
                            raise
                        raise NotReplicated(queue, self.min_replicas, refused=True) from exc
            if confirmed >= self.min_replicas:
                return reply
            try:
                for withdraw in undo:
                    client.execute_command(*withdraw)
            except BROKER_ERRORS as exc:
                logger.warning("An unconfirmed enqueue to %s was not withdrawn: %s", queue, exc)
            raise NotReplicated(queue, self.min_replicas, confirmed=confirmed)

    # fence: kombu-redis-bind
    def _queue_bind(self, exchange, routing_key, pattern, queue):
        """Record a binding only if Redis does not have it yet, and when this process'
        Redis user may not (a producer declaring another site's queue, broker.acl: only
        that queue's workers write its binding), keep it here: a user that could add a
        binding to another site's exchange could route that site's tasks into its own
        queue."""
        key = self.keyprefix_queue % (exchange,)
        member = self.sep.join([routing_key or "", pattern or "", queue or ""])
        with self.conn_or_acquire() as client:
            if queue not in self._expires and client.sismember(key, member):
                return
        try:
            super()._queue_bind(exchange, routing_key, pattern, queue)
        except redis.exceptions.NoPermissionError:
            local = self._local_bindings.setdefault(exchange, [])
            if (routing_key, pattern, queue) not in local:
                local.append((routing_key or "", pattern or "", queue or ""))

    def get_table(self, exchange):
        table = super().get_table(exchange)
        return table + [
            binding for binding in self._local_bindings.get(exchange, ()) if binding not in table
        ]

    # fence: kombu-redis-purge
    def _purge(self, queue):
        purged = super()._purge(queue)
        with self.conn_or_acquire() as client:
            with client.pipeline() as pipe:
                for pri in self.priority_steps:
                    key = keys.delayed(self._q_for_pri(queue, pri))
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
        self._hand_back()
        worker = self._lease.worker_id
        pairs, record = [], []
        for pri in self.priority_steps:
            for queue in queues:
                key = self._q_for_pri(queue, pri)
                pairs += (key, keys.held(worker, key))
                # A no-ack consumer (control replies, e.g. Flower's inspect) never
                # acknowledges: recording its deliveries would leave them held.
                record.append("0" if queue in self._no_ack_queues else "1")
        idle = not (self._queue_may_have_more or self.qos.pending_acks) and "1" in record
        room = self.qos.can_consume_max_estimate() or 100  # prefetch 0: no limit
        if not idle and self._fetch_can_wait(room):
            return
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        if idle:
            # Idle: wait for the next message, moved into our held list as it is popped.
            # Only one key can be waited on; the others are fetched after the wait.
            at = 2 * record.index("1")
            source, held = pairs[at], pairs[at + 1]
            self._fetch_command, self._blmove_source = "BLMOVE", source
            self._queue_may_have_more = True  # after the wait, fetch every key once
            wait = self.brpop_timeout if timeout is None else timeout
            self.client.connection.send_command("BLMOVE", source, held, "RIGHT", "LEFT", wait)
            self._send_wait()
            return
        acks = self.qos.take_pending_acks()
        results = [held.result for held in acks if held.result is not None]
        self._fetch_command, self._acks_in_flight = "EVALSHA", acks
        try:
            self.client.connection.send_command(
                *FETCH.command(
                    (
                        self._lease.room.leases,
                        *pairs,
                        *(held.key for held in acks),
                        *(result.key for result in results),
                    ),
                    (
                        worker,
                        room,
                        "".join(record),
                        len(results),
                        *(held.raw for held in acks),
                        *(arg for result in results for arg in result.args),
                    ),
                    clock=self._lease.room.clock,
                )
            )
            self._send_wait()
        except BaseException:
            self.qos.put_back(acks)
            self._in_poll, self._acks_in_flight = None, ()
            raise

    def _fetch_can_wait(self, room: int) -> bool:
        """Whether this fetch waits for more of the prefetch window to be free.

        A busy worker would otherwise fetch after every task (a script run and a round
        trip per task, each carrying one ack): it fetches once half its window is free,
        or once an ack has waited ACK_BATCH_SECONDS (the loop is woken then), so the
        acks of several tasks and the messages replacing them go in one round trip."""
        window = self.qos.prefetch_count
        if not window or room * 2 >= window or self.qos.acks_due() or ORPHANED_ACKS:
            return False  # (acks of a lost connection's tasks go at once)
        self._fetch_waits = True
        if self.qos.pending_acks and not self._wake_pending:
            loop = self.connection.loop
            if loop is None:
                return False  # no loop to come back to the acks: fetch now
            self._wake_pending = True
            loop.call_later(ACK_BATCH_SECONDS, self._wake)
        return True

    def _wake(self):
        # A loop turn runs the poller again (transport.MultiChannelPoller.on_poll_start).
        self._wake_pending = False

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
        command, acks = self._fetch_command, self._acks_in_flight
        waits, self._acks_in_flight, self._wait_in_flight = self._wait_in_flight, (), False
        try:
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
                confirmed = self._read_wait() if waits else None
            except self.connection_errors:
                # Whether the script ran is unknown: the next connection removes them
                # again (removing an item no longer held changes nothing).
                ORPHANED_ACKS.extend(acks)
                self.client.connection.disconnect()
                raise
            except self.ResponseError as exc:
                if waits:
                    self._read_wait()  # keep the connection in step
                if command != "EVALSHA":
                    raise
                # Refused as a whole (NOSCRIPT, out of memory) or applied before a lost
                # lease was found: sent again with the next fetch either way.
                self.qos.put_back(acks)
                self._on_script_error(exc)
                raise kombu_redis.Empty() from exc
            if command == "EVALSHA":
                items = [reply[i : i + 3] for i in range(0, len(reply or ()), 3)]
                self._queue_may_have_more = bool(items)
            elif command == "BLMOVE":
                items = [(self._blmove_source, reply, 1)] if reply is not None else []
            else:
                items = [(*reply, 0)] if reply else []
            if confirmed is not None and confirmed < self.min_replicas:
                items = self._unconfirmed(items, acks, confirmed)
            if not items:
                raise kombu_redis.Empty()
            for key, item, recorded in items:
                key = bytes_to_str(key)
                held = Held(keys.held(self._lease.worker_id, key), key, item) if recorded else None
                self._deliver_item(key.rsplit(self.sep, 1)[0], item, held)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def _send_wait(self):
        """With replicas required, the fetch is followed by WAIT on the same connection:
        what it moved into this worker's held lists (and the acknowledgements it applied)
        is run only once the replicas hold it, so a failover cannot hand it to another
        worker while this one runs it (docs/reliability.md)."""
        if self.min_replicas:
            self.client.connection.send_command("WAIT", self.min_replicas, self.replica_timeout_ms)
            self._wait_in_flight = True

    def _read_wait(self) -> int:
        return self.client.parse_response(self.client.connection, "WAIT")

    def _unconfirmed(self, items, acks, confirmed):
        """A fetch the replicas did not confirm: its recorded messages are not run but
        handed back (lua/restore.lua pushes back only what is still held), and its
        acknowledgements are sent again; what a no-ack consumer took is delivered."""
        ORPHANED_ACKS.extend(acks)
        worker = self._lease.worker_id
        held = [
            Held(keys.held(worker, bytes_to_str(key)), bytes_to_str(key), item)
            for key, item, recorded in items
            if recorded
        ]
        HAND_BACK.extend(held)
        if not held:
            return items  # nothing recorded to hold back (an idle wait, a no-ack queue)
        logger.warning(
            "A fetch of %d message(s) was confirmed by %d of %d replica(s) in time: "
            "handed back, not run (PLATFORM_BROKER_MIN_REPLICAS)",
            len(held),
            confirmed,
            self.min_replicas,
        )
        return [entry for entry in items if not entry[2]]

    def _hand_back(self):
        if not HAND_BACK:
            return
        records = [HAND_BACK.popleft() for _ in range(len(HAND_BACK))]
        try:
            self.qos.restore(records)
        except BROKER_ERRORS as exc:
            HAND_BACK.extendleft(reversed(records))  # the next fetch tries again
            logger.warning("%d unconfirmed message(s) not handed back yet: %s", len(records), exc)

    def _deliver_item(self, dest, item, held):
        self._queue_cycle.rotate(dest)
        parsed = None
        try:
            parsed = envelope.parse(item)
            check_envelope(parsed)
            tag = parsed["properties"]["delivery_tag"]
            if tag in self.qos._delivered and tag not in self.qos._dirty:  # _dirty: acked
                raise BadMessage(
                    Rejection.BAD_ENVELOPE,
                    "properties.delivery_tag",
                    "is the tag of another message this worker holds (a copied message)",
                )
        except BadMessage as exc:
            self._forget(held)
            report_rejection(dest, exc.reason, str(exc), **envelope.context(parsed, item))
            return
        if held is not None:
            delay = delay_of(parsed)
            if should_park(delay):  # e.g. a far ETA from a plain Celery client
                self._park_held(held, delay, parsed)
                return
            if not self._admitted(held, parsed):
                return  # it waits at its rate limit's gate (or was swept meanwhile)
            self.qos.held[tag] = held
        try:
            self.connection._deliver(parsed, dest)
        except BROKER_ERRORS:
            raise
        except Exception as exc:
            # The consumer rejects what it finds wrong itself; this is what neither
            # layer's checks foresaw. It must not reach kombu's connection handling.
            if tag in self.qos._delivered:
                self.qos.ack(tag)
            else:
                self._forget(self.qos.held.pop(tag, None))
            if isinstance(exc, BadMessage):
                reason, detail = exc.reason, str(exc)
            else:
                reason, detail = Rejection.UNEXPECTED, f"{type(exc).__name__}: {exc}"
            report_rejection(dest, reason, detail, **envelope.context(parsed, item))

    def _admitted(self, held, parsed) -> bool:
        """Whether a delivery may run now under its rate limit (rate_limits): one that
        was released at its slot does; another asks for a slot, or waits at the gate."""
        if self._limits is None or rate_limits.slot_of(parsed) is not None:
            return True
        headers = parsed.get("headers")
        limited = self._limits.for_task(
            str(headers.get("task") if isinstance(headers, dict) else "")
        )
        if limited is None:
            return True
        with self.conn_or_acquire() as client:
            return rate_limits.admit(client, self._limits, *limited, held.key, held.raw) == 1

    def _park_held(self, held, delay, parsed):
        """Move a delivery due later than the horizon from our held list to its delayed set."""
        with self.conn_or_acquire() as client:
            room = keys.room(held.source)
            due = PARK(
                client,
                (room.delayed(held.source), held.key),
                (int(delay * 1000), held.raw),
                clock=room.clock,
            )
        if due >= 0:
            logger.info(
                "Task %s due in %.0f s parked in the delayed set of %s",
                envelope.context(parsed, held.raw).get("id", "?"),
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
        if isinstance(exc, redis.exceptions.NoScriptError):
            # This Redis does not know the script (restarted, or its cache flushed):
            # load it; the next poll fetches.
            with self.conn_or_acquire() as client:
                FETCH.load(client)
            return
        if LeaseLost.from_reply(exc):
            self._lease.renew_after_loss()
            return
        # Refused as a whole (out of memory, busy, read-only): nothing was popped.
        self._script_retry_at = monotonic() + SCRIPT_RETRY_SECONDS
        logger.error(
            "Redis refused the fetch script: %s; retrying in %.0f s", exc, SCRIPT_RETRY_SECONDS
        )

    def close(self):
        # Acknowledged work must not be restored (and run again) by a restart.
        if not self.closed:
            try:
                self.qos.flush_acks()
            except self.connection_errors as exc:
                logger.warning(
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
