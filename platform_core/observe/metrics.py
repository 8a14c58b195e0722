"""The platform's figures in the Prometheus format, and the listener that serves them.

``PlatformCollector`` turns one ``queue_stats`` snapshot per scrape into metric
families. It is registered in the Flower process's default registry, beside Flower's
own metrics (task runtimes, worker liveness), so one scrape returns both.

``serve`` answers ``GET /metrics`` on its own address and port with basic auth and
nothing else: Flower's port carries its control API (shut workers down, revoke tasks),
so the port opened to the monitoring host is this one, with read-only credentials.
"""

import base64
import hmac
import logging
import socketserver
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from platform_core.errors import Rejection
from platform_core.observe.broker_state import BrokerState, read_broker_state
from platform_core.observe.queue_stats import Snapshot, read_snapshot

logger = logging.getLogger(__name__)


class PlatformCollector:
    """Reads Redis on each scrape (at most three round trips, platform_core.observe.queue_stats,
    plus the broker's own state, observe.broker_state)."""

    def __init__(self, client: redis.Redis, sentinel=None, master_name: str = ""):
        self.client = client
        self.sentinel, self.master_name = sentinel, master_name

    def describe(self):
        return []  # nothing to read at registration time

    def collect(self):
        up = GaugeMetricFamily("platform_redis_up", "1 if the broker answered this scrape")
        try:
            snapshot = read_snapshot(self.client)
        except redis.RedisError as exc:
            logger.warning("metrics: the broker did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families(snapshot)
        try:
            state = read_broker_state(self.client, self.sentinel, self.master_name)
        except redis.RedisError as exc:
            logger.warning("metrics: the broker's replication state was not read: %s", exc)
            return
        yield from broker_families(state)


def broker_families(state: BrokerState):
    replicas = GaugeMetricFamily(
        "platform_broker_replicas_connected", "Replicas the primary sees online"
    )
    replicas.add_metric([], state.replicas_online)
    lag = GaugeMetricFamily(
        "platform_broker_replica_lag_seconds", "The worst replica's lag (s since its last ack)"
    )
    lag.add_metric([], state.worst_lag_seconds)
    jumps = CounterMetricFamily(
        "platform_broker_clock_jumps",
        "Changes of primary whose clock gap was beyond what the platform's clock absorbs",
    )
    jumps.add_metric([], state.clock_jumps)
    yield from (replicas, lag, jumps)
    if state.sentinels is None:
        return
    quorum = GaugeMetricFamily(
        "platform_broker_sentinel_quorum_ok", "1 if the sentinels can authorize a failover"
    )
    quorum.add_metric([], 1 if state.sentinels.quorum_ok else 0)
    epoch = GaugeMetricFamily(
        "platform_broker_failover_epoch", "Sentinel's config-epoch: one more per failover"
    )
    epoch.add_metric([], state.sentinels.failover_epoch)
    reachable = GaugeMetricFamily(
        "platform_broker_sentinels_reachable", "Sentinels of the broker URL that answered"
    )
    reachable.add_metric([], state.sentinels.reachable)
    yield from (quorum, epoch, reachable)


def families(snapshot: Snapshot):
    """The metric families of one snapshot."""
    queues = [stats for name, stats in snapshot.queues.items() if stats.waiting]
    waiting = GaugeMetricFamily(
        "platform_queue_messages_waiting",
        "Messages waiting in the queue's list, per priority step",
        labels=["queue", "priority"],
    )
    oldest = GaugeMetricFamily(
        "platform_queue_oldest_message_age_seconds",
        "How long the message at the head of the queue has waited (0: empty). From its "
        "send stamp or due time; for a plain client's message, since first seen there",
        labels=["queue"],
    )
    in_flight = GaugeMetricFamily(
        "platform_queue_messages_in_flight",
        "Messages delivered to a worker and not yet acknowledged",
        labels=["queue"],
    )
    delayed = GaugeMetricFamily(
        "platform_queue_messages_delayed",
        "Messages waiting in the queue's delayed set for their due time",
        labels=["queue"],
    )
    next_due = GaugeMetricFamily(
        "platform_queue_next_due_seconds",
        "Seconds until the first delayed message is due (no series: none delayed)",
        labels=["queue"],
    )
    rate_limited = GaugeMetricFamily(
        "platform_queue_messages_rate_limited",
        "Messages waiting at a global rate limit's gate for their slot (manage.py ratelimit)",
        labels=["queue"],
    )
    consumers = GaugeMetricFamily(
        "platform_queue_consumers",
        "Workers with a live lease taking messages from the queue",
        labels=["queue"],
    )
    for stats in queues:
        for priority, count in stats.waiting.items():
            waiting.add_metric([stats.queue, str(priority)], count)
        oldest.add_metric([stats.queue], stats.oldest_age or 0.0)
        in_flight.add_metric([stats.queue], stats.in_flight)
        delayed.add_metric([stats.queue], stats.delayed)
        if stats.next_due_in is not None:
            next_due.add_metric([stats.queue], stats.next_due_in)
        consumers.add_metric([stats.queue], stats.consumers)
        rate_limited.add_metric([stats.queue], stats.rate_limited)
    yield from (waiting, oldest, in_flight, delayed, next_due, consumers, rate_limited)
    yield from _counters(snapshot)
    yield from _workers(snapshot)
    yield from _beat(snapshot)


def _counters(snapshot: Snapshot):
    rejected = CounterMetricFamily(
        "platform_rejected_messages",
        "Messages refused, by reason (platform_core.errors.Rejection: bad input, unknown "
        "task, wrong arguments, too-many-attempts, drills-off …)",
        labels=["queue", "reason"],
    )
    poison = CounterMetricFamily(
        "platform_poison_tasks",
        "Tasks given up after PLATFORM_MAX_ATTEMPTS deliveries that never completed",
        labels=["queue"],
    )
    redelivered = CounterMetricFamily(
        "platform_redelivered_messages",
        "Messages handed back to their queue after their worker's lease expired",
        labels=["queue"],
    )
    cancelled = GaugeMetricFamily(
        "platform_cancelled_tasks",
        "Cancellations kept in the queue's room (manage.py cancel; kept for "
        "PLATFORM_MAX_DELAY_SECONDS, so a redelivered or late message is still dropped)",
        labels=["queue"],
    )
    for stats in snapshot.queues.values():
        cancelled.add_metric([stats.queue], stats.cancelled)
        # Every reason the platform can give, from zero (a rate shows from the first
        # refusal); a reason counted by another version is still shown.
        for reason in [*Rejection, *(r for r in stats.rejected if r not in set(Rejection))]:
            rejected.add_metric([stats.queue, str(reason)], stats.rejected.get(reason, 0))
        poison.add_metric([stats.queue], stats.rejected.get(Rejection.TOO_MANY_ATTEMPTS, 0))
        redelivered.add_metric([stats.queue], stats.redelivered)
    yield from (rejected, poison, redelivered, cancelled)


def _workers(snapshot: Snapshot):
    alive = GaugeMetricFamily(
        "platform_worker_lease_alive",
        "1 while the worker's lease is live; 0 once expired (swept within seconds)",
        labels=["worker"],
    )
    renewed = GaugeMetricFamily(
        "platform_worker_lease_renewal_age_seconds",
        "Seconds since the worker last renewed its lease",
        labels=["worker"],
    )
    held = GaugeMetricFamily(
        "platform_worker_messages_in_flight",
        "Messages the worker holds (running, reserved, waiting for a near ETA)",
        labels=["worker", "queue"],
    )
    for worker in snapshot.workers:
        alive.add_metric([worker.worker], 1 if worker.alive else 0)
        if worker.renewed_age is not None:
            renewed.add_metric([worker.worker], worker.renewed_age)
        for queue, count in worker.in_flight.items():
            held.add_metric([worker.worker, queue], count)
    yield from (alive, renewed, held)


def _beat(snapshot: Snapshot):
    leader = GaugeMetricFamily(
        "platform_beat_leader",
        "1 with the active beat's identity as label; no series: no beat holds the lock",
        labels=["beat"],
    )
    present = GaugeMetricFamily("platform_beat_leader_present", "1 if a beat holds the lock")
    tick = GaugeMetricFamily(
        "platform_beat_last_tick_age_seconds", "Seconds since the active beat last ticked"
    )
    if snapshot.beat.leader:
        leader.add_metric([snapshot.beat.leader], 1)
    present.add_metric([], 1 if snapshot.beat.leader else 0)
    if snapshot.beat.tick_age is not None:
        tick.add_metric([], snapshot.beat.tick_age)
    trips = GaugeMetricFamily(
        "platform_metrics_redis_round_trips", "Redis round trips this scrape took"
    )
    trips.add_metric([], snapshot.round_trips)
    yield from (leader, present, tick, trips)


def register(client: redis.Redis, sentinel=None, master_name="", registry=REGISTRY) -> None:
    registry.register(PlatformCollector(client, sentinel, master_name))


def authorized(header: str, credentials: str) -> bool:
    """Does an Authorization header carry ``user:password`` (basic auth)?"""
    scheme, _, token = header.partition(" ")
    if scheme != "Basic":
        return False
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(given, credentials.encode())


def metrics_app(credentials: str, registry=REGISTRY):
    """A WSGI app: /metrics with basic auth, 401 without, 404 for anything else."""
    exporter = make_wsgi_app(registry)

    def app(environ, start_response):
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"only /metrics here\n"]
        if not authorized(environ.get("HTTP_AUTHORIZATION", ""), credentials):
            start_response(
                "401 Unauthorized",
                [("Content-Type", "text/plain"), ("WWW-Authenticate", 'Basic realm="metrics"')],
            )
            return [b"credentials required (PLATFORM_METRICS_AUTH)\n"]
        return exporter(environ, start_response)

    return app


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow scraper never holds the process up at exit


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):  # one line per scrape would drown Flower's log
        pass


def serve(address: str, port: int, credentials: str, registry=REGISTRY) -> WSGIServer:
    """Serve /metrics on ``address:port`` from a daemon thread; returns the server."""
    server = make_server(
        address,
        port,
        metrics_app(credentials, registry),
        server_class=_ThreadingServer,
        handler_class=_QuietHandler,
    )
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
