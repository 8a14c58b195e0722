"""Every place the platform replaces or relies on a Celery, kombu or Flower internal.

One record per override: what upstream thing it replaces (qualified names), why, which
code of ours does it, and which upstream package it belongs to. The versions each
package was verified with are stated once, in ``VERIFIED``. The overriding code names
its record (``fence: <id>`` in its docstring or comment).

tests/unit/test_upstream_fence.py fails when an installed version differs from
``VERIFIED`` and lists exactly the records to re-verify; it also checks that each
upstream name still exists and that each overriding module names its record.
docs/architecture.md ("Overrides of upstream internals") holds the table
``python -m platform_core.config.fences`` prints; a unit test keeps the two equal.

To upgrade kombu, Celery or Flower: re-verify each listed record against the new
version (its ``replaces`` names, read the new upstream code), adjust our code, then
change the version here.
"""

import importlib.metadata
from dataclasses import dataclass

# The upstream versions every record below was verified against (stated once).
VERIFIED = {"kombu": "5.7.0", "celery": "5.7.0", "flower": "2.2.0", "redis": "8.1.0"}


@dataclass(frozen=True)
class Override:
    id: str
    package: str  # a key of VERIFIED
    replaces: tuple[str, ...]  # upstream qualified names; "name[key]" for a mapping entry
    ours: tuple[str, ...]  # our code doing it, "module:name"
    why: str

    @property
    def verified(self) -> str:
        return VERIFIED[self.package]

    @property
    def modules(self) -> tuple[str, ...]:
        """Our modules holding the override (each names this record)."""
        return tuple(dict.fromkeys(name.split(":")[0] for name in self.ours))


OVERRIDES = (
    # redis-py: platform_core/broker
    Override(
        "redis-sentinel-managed-connection",
        "redis",
        (
            "redis.sentinel.SentinelManagedConnection.connect_to",
            "redis.sentinel.SentinelManagedConnection.read_response",
            "redis.connection.AbstractConnection.send_packed_command",
            "redis.sentinel.SentinelConnectionPoolProxy",
        ),
        ("platform_core.broker.silent_hosts:FollowsSentinel",),
        "a connection to the primary dropped and used again reconnects through the "
        "sentinels (redis-py's send_packed_command goes back to the host it had, the old "
        "primary after a failover); a timeout from a host makes every older connection of "
        "the process to it fail its next command at once, not each after COMMAND_SECONDS "
        "(a powered-off primary stalled a worker's event loop for 12 s); new connections "
        "to it fail at once until a background probe hears it (a connect begun just "
        "before the promotion held workers and producers up to 3 s after it).",
    ),
    # kombu: platform_core/broker
    Override(
        "kombu-transport-alias",
        "kombu",
        (
            "kombu.transport.TRANSPORT_ALIASES['redis']",
            "kombu.transport.TRANSPORT_ALIASES['sentinel']",
        ),
        ("platform_core.broker.transport:install",),
        "redis:// URLs of every process (workers, Flower, beat, web) use the platform's "
        "transport below; set process-wide by the alias (Celery's broker_transport setting "
        "would do it per app, not yet verified for every process).",
    ),
    Override(
        "kombu-redis-sentinel",
        "kombu",
        (
            "kombu.transport.redis.SentinelChannel._sentinel_managed_pool",
            "kombu.transport.redis.SentinelTransport",
        ),
        ("platform_core.broker.transport:SentinelChannel",),
        "sentinel:// URLs get the platform's channel on a primary named by Sentinel; the pool "
        "comes from clients.Sentinel (its error names every sentinel tried and the master "
        "name) and the sentinels take the primary's password (no second copy in options).",
    ),
    Override(
        "kombu-redis-fetch",
        "kombu",
        ("kombu.transport.redis.Channel._brpop_start",),
        ("platform_core.broker.channel:Channel._brpop_start",),
        "one script (lua/fetch.lua, by SHA) acknowledges the last turn's deliveries and moves "
        "a prefetch window of messages into this worker's held lists; BLMOVE while idle. "
        "Stock: BRPOP, then ZADD+HSET, then ZREM+HDEL per message.",
    ),
    Override(
        "kombu-redis-read",
        "kombu",
        ("kombu.transport.redis.Channel._brpop_read",),
        ("platform_core.broker.channel:Channel._brpop_read",),
        "a copy of kombu's, reading the BRPOP, BLMOVE and FETCH replies and parsing each "
        "envelope under a guard: stock kombu parses inside the event loop, where a non-JSON "
        "item kills the worker and a KeyError counts as a lost connection.",
    ),
    Override(
        "kombu-redis-qos",
        "kombu",
        (
            "kombu.transport.redis.QoS.append",
            "kombu.transport.redis.QoS.ack",
            "kombu.transport.redis.QoS.reject",
            "kombu.transport.redis.QoS.restore_unacked",
            "kombu.transport.virtual.QoS._delivered",
            "kombu.transport.virtual.QoS._dirty",
        ),
        ("platform_core.broker.qos:QoS",),
        "deliveries are held per worker under a lease (broker.leases), not in kombu's "
        "time-windowed unacked index: redelivered when the worker dies, never while it "
        "lives. Relies on virtual.QoS's _delivered/_dirty bookkeeping.",
    ),
    Override(
        "kombu-redis-consume",
        "kombu",
        ("kombu.transport.redis.Channel.basic_consume",),
        ("platform_core.broker.channel:Channel.basic_consume",),
        "takes the worker's lease and starts the delayed-set promoter for the consumed "
        "queues; remembers no-ack queues (their deliveries are never recorded).",
    ),
    Override(
        "kombu-redis-held-format",
        "kombu",
        (
            "kombu.transport.redis.Channel._do_restore_message",
            "kombu.transport.virtual.Message.__init__",
        ),
        (
            "platform_core.broker.scripts:FETCH",
            "platform_core.broker.scripts:SWEEP",
            "platform_core.broker.scripts:RESTORE",
            "platform_core.broker.envelope:Message",
            "platform_core.broker.message_checks:check_envelope",
        ),
        "held lists keep kombu's Redis envelope byte for byte (the ack is an LREM of it); "
        "a sweep or restore marks it redelivered as kombu's _do_restore_message does "
        "(headers.redelivered, properties.delivery_info.redelivered; one Lua helper, "
        "lua/mark_redelivered.lua). The envelope fields "
        "are checked before kombu's virtual Message reads them.",
    ),
    Override(
        "kombu-legacy-unacked-index",
        "kombu",
        (
            "kombu.transport.redis.Channel.unacked_key",
            "kombu.transport.redis.Channel.unacked_index_key",
            "kombu.transport.redis.Channel.unacked_restore_interval",
            "kombu.transport.redis.QoS.restore_visible",
        ),
        (
            "platform_core.config.queues:QueuePolicy.transport_options",
            "platform_core.broker.qos:QoS.restore_visible",
        ),
        "the upgrade path: kombu's own restore still sweeps its unacked index (the keys "
        "and window versions before leases used), so messages left there go back once; "
        "only in a worker consuming its queue (Flower may not touch messages).",
    ),
    Override(
        "kombu-redis-publish",
        "kombu",
        ("kombu.transport.redis.Channel._put",),
        ("platform_core.broker.channel:Channel._put",),
        "stamps the send time (sent_stamp); an enqueue waits for the replicas "
        "(PLATFORM_BROKER_MIN_REPLICAS) or is sent once per occurrence (ONCE_HEADER); "
        "Redis' NOPERM (the site may not send to that queue, broker.acl) is raised as "
        "SendNotAllowed, one line.",
    ),
    Override(
        "kombu-redis-bind",
        "kombu",
        ("kombu.transport.redis.Channel._queue_bind", "kombu.transport.redis.Channel.get_table"),
        ("platform_core.broker.channel:Channel._queue_bind",),
        "a binding already in Redis is not written again, and one this process' Redis user "
        "may not write (a producer declaring another site's queue: only its workers write "
        "its binding, broker.acl) is kept in the channel and routed by as if recorded.",
    ),
    Override(
        "celery-result-consumer",
        "celery",
        (
            "celery.backends.redis.ResultConsumer.drain_events",
            "celery.backends.redis.ResultConsumer.on_state_change",
            "celery.backends.redis.ResultConsumer._locked",
            "celery.backends.redis.ResultConsumer.reconnect_on_error",
        ),
        ("platform_core.tasks.results:CheckingResultConsumer",),
        "while a result is waited for, its stored value is read once a second besides "
        "the channel (as Celery's own reconnect does): a missed PUBLISH (seen over TLS "
        "between hosts) no longer leaves get() waiting for a task that finished.",
    ),
    Override(
        "kombu-redis-purge",
        "kombu",
        ("kombu.transport.redis.Channel._purge",),
        ("platform_core.broker.channel:Channel._purge",),
        "a purge also empties the queue's delayed sets.",
    ),
    Override(
        "kombu-redis-client",
        "kombu",
        ("kombu.transport.redis.Channel.conn_or_acquire",),
        ("platform_core.broker.channel:Channel.conn_or_acquire",),
        "one redis-py client per connection pool instead of a new one per publish "
        "(~60 µs each: the client copies its response-callback table).",
    ),
    Override(
        "kombu-redis-poller-acks",
        "kombu",
        (
            "kombu.transport.redis.MultiChannelPoller.on_poll_start",
            "kombu.transport.redis.MultiChannelPoller.maybe_check_brpop_health",
            "kombu.transport.redis.MultiChannelPoller._client_registered",
            "kombu.transport.redis.Transport.register_with_event_loop",
            "celery.worker.loops.asynloop",
        ),
        (
            "platform_core.broker.transport:MultiChannelPoller",
            "platform_core.broker.transport:Transport",
        ),
        "acknowledgements of one event-loop turn go in one pipeline before the loop sleeps "
        "(when no fetch carried them); a fetch dropped for having no reply marks its host "
        "silent, and a channel whose connections go to a host marked silent fails from the "
        "poller's timer, so the consumer reconnects at once (a worker whose prefetch is full "
        "sends no fetch: it learnt of a powered-off primary only at its next ack).",
    ),
    Override(
        "kombu-priority-keys",
        "kombu",
        ("kombu.transport.redis.Channel._q_for_pri",),
        ("platform_core.broker.transport:priority_keys",),
        "the queue metrics and scripts name each priority step's list as kombu does.",
    ),
    # Celery: platform_core/tasks
    Override(
        "celery-result-backend",
        "celery",
        (
            "celery.loaders.base.BaseLoader.override_backends",
            "celery.backends.redis.RedisBackend.on_task_call",
        ),
        ("platform_core.tasks.results:install", "platform_core.tasks.results:LazyRedisBackend"),
        "redis:// result URLs of the platform's apps use a backend that subscribes to a "
        "result only when someone waits for it (stock: one subscription per enqueue). Set "
        "through Celery's hook, the app loader's override_backends, per app.",
    ),
    Override(
        "celery-result-store",
        "celery",
        (
            "celery.backends.base.BaseKeyValueStoreBackend._store_result",
            "celery.backends.redis.RedisBackend._set",
        ),
        ("platform_core.tasks.results:LazyRedisBackend._store_result",),
        "a result written in one round trip (lua/store_result.lua: keep a stored SUCCESS, "
        "else SET with its expiry and PUBLISH) instead of a GET, then SET and PUBLISH in a "
        "pipeline; JSON results without compression only (the script reads the status).",
    ),
    Override(
        "celery-pool-flush",
        "celery",
        (
            "celery.concurrency.prefork.TaskPool.on_start",
            "celery.worker.consumer.consumer.Consumer.on_close",
        ),
        ("platform_core.tasks.pool_jobs:KeepPoolJobs",),
        "the pool is not flushed when the consumer reconnects: Celery discards every job no "
        "child has reported started (those in the outbound buffer never run, those written "
        "to a child run with their acknowledgement dropped) expecting the broker to "
        "redeliver them; the platform keeps them held across the reconnect, so each must "
        "run here, once, and be acknowledged (measured: a task lost, or run twice).",
    ),
    Override(
        "celery-result-handback",
        "celery",
        (
            "celery.worker.request.create_request_cls",
            "celery.app.trace.fast_trace_task",
            "celery.app.trace.trace_task_ret",
            "celery.concurrency.base.BasePool.apply_async",
        ),
        ("platform_core.tasks.result_handback:wrap_pool",),
        "a task's final result goes back to the main process with Celery's (failed, "
        "retval, runtime) and is stored with the message's acknowledgement (in the fetch "
        "script) instead of by the pool child: relies on the pool callback acknowledging "
        "and on the trace function's arguments (task id second) and return.",
    ),
    Override(
        "celery-worker-revoke",
        "celery",
        (
            "celery.worker.state.revoked",
            "celery.worker.state.requests",
            "celery.worker.control._revoke",
            "celery.worker.request.Request.terminate",
        ),
        ("platform_core.tasks.cancellation:_stop",),
        "a cancellation heard from Redis is Celery's revoke in this worker only (what the "
        "`revoke` control command does, without a broadcast a site's credentials may not "
        "send): the id in the revoked set, a reserved or running request terminated with "
        "the soft time limit's signal.",
    ),
    Override(
        "celery-consumer-bad-messages",
        "celery",
        (
            "celery.worker.consumer.consumer.Consumer.create_task_handler",
            "celery.worker.consumer.consumer.Consumer.on_decode_error",
            "celery.worker.consumer.consumer.Consumer.on_unknown_message",
            "celery.worker.consumer.consumer.Consumer.on_invalid_task",
            "celery.worker.consumer.consumer.Consumer.on_unknown_task",
        ),
        ("platform_core.tasks.consumer:PlatformConsumer",),
        "one log line per bad message, counted in platform:rejected; headers and body "
        "checked before Celery reads them. Celery's task_rejected and task_unknown signals "
        "fire as upstream sends them (task_rejected also for the platform's own checks).",
    ),
    Override(
        "celery-result-backend-sentinel",
        "celery",
        ("celery.backends.redis.SentinelBackend._get_sentinel_instance",),
        ("platform_core.tasks.results:LazySentinelBackend",),
        "sentinel:// result URLs: the lazy backend on clients.Sentinel (its error names every "
        "sentinel tried); the sentinels take the primary's password, not a copy in options.",
    ),
    Override(
        "celery-consumer-reconnect",
        "celery",
        (
            "celery.worker.consumer.consumer.Consumer.ensure_connected",
            "kombu.connection.Connection._ensure_connection",
        ),
        ("platform_core.tasks.consumer:PlatformConsumer.ensure_connected",),
        "the worker's broker reconnect asks every 0.5 s, at most 1 s apart (config.timeouts), "
        "instead of kombu's 2, 4, 6 … 30 s: back within ~1 s of a failover's end.",
    ),
    Override(
        "celery-worker-active-requests",
        "celery",
        (
            "celery.worker.state.active_requests",
            "celery.worker.state.reserved_requests",
            "celery.worker.request.Request.message",
            "celery.worker.request.Request._apply_result",
        ),
        ("platform_core.broker.qos:_running_tags",),
        "relied on, not replaced: when a channel closes under its tasks, those executing or "
        "handed to the pool (acknowledged when done, through the next connection) are told "
        "from those only reserved (handed back); Consumer.on_close drops reserved requests "
        "only after the channel has closed.",
    ),
    Override(
        "celery-consumer-events",
        "celery",
        (
            "celery.worker.consumer.consumer.Consumer.on_send_event_buffered",
            "celery.worker.consumer.consumer.Consumer._flush_events",
            "celery.worker.consumer.consumer.Consumer.shutdown",
        ),
        ("platform_core.tasks.consumer:PlatformConsumer",),
        "task events gathered for PLATFORM_EVENT_FLUSH_MS into one publish (stock: one per "
        "loop turn), and flushed at shutdown (stock drops them).",
    ),
    Override(
        "celery-task-header",
        "celery",
        ("celery.app.base.Celery.type_checker", "celery.app.base.Celery._task_from_fun"),
        ("platform_core.tasks.task_base:PlatformTask.__call__",),
        "a message's arguments are bound first to the task's __header__ (the signature stub "
        "Celery builds with type_checker when it creates the task), so wrong arguments are "
        "one rejection line (WrongArguments), not a traceback.",
    ),
    # Flower: platform_core/observe
    Override(
        "flower-metrics-auth",
        "flower",
        ("flower.urls.handlers", "flower.views.monitor.Metrics"),
        ("platform_core.observe.flower_fence:require_credentials_for_metrics",),
        "Flower's /metrics answers without credentials (its handler is not marked "
        "authenticated) while every other page requires them; Flower has no option.",
    ),
)

BY_ID = {override.id: override for override in OVERRIDES}


def installed_versions() -> dict[str, str]:
    return {package: importlib.metadata.version(package) for package in VERIFIED}


def to_reverify(installed: dict[str, str]) -> list[Override]:
    """The records whose package is installed in another version than verified."""
    return [o for o in OVERRIDES if installed.get(o.package, o.verified) != o.verified]


def reverify_message(installed: dict[str, str]) -> str:
    """What to re-verify, or "" when every installed version is the verified one."""
    stale = to_reverify(installed)
    if not stale:
        return ""
    changed = ", ".join(
        f"{package} {installed[package]} (verified {version})"
        for package, version in VERIFIED.items()
        if installed.get(package, version) != version
    )
    lines = [
        f"Installed {changed}: re-verify these overrides of upstream internals "
        "(platform_core/config/fences.py), then update VERIFIED there:"
    ]
    for override in stale:
        lines.append(
            f"  {override.id}: {', '.join(override.modules)} "
            f"(upstream: {', '.join(override.replaces)})"
        )
    return "\n".join(lines)


def markdown_table() -> str:
    """The table of docs/architecture.md's "Overrides of upstream internals"."""
    rows = [
        "| fence | verified with | upstream (replaced or relied on) | ours |",
        "|---|---|---|---|",
    ]
    for o in OVERRIDES:
        replaces = ", ".join(f"`{name}`" for name in o.replaces)
        ours = ", ".join(f"`{module}`" for module in o.modules)
        rows.append(f"| `{o.id}` | {o.package} {o.verified} | {replaces} | {ours} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
