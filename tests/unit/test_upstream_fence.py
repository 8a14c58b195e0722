"""The kombu, Celery and Flower internals the platform replaces, checked against the
versions they were verified with (platform_core/config/fences.py, the one registry).

When an upgrade changes a version, the first test fails and lists each override to
re-verify: its fence id, our modules, the upstream names. When an internal moves, the
structural check of its fence fails and names it. Re-verify, then update VERIFIED in
platform_core/config/fences.py.
"""

import importlib
import inspect
import re
from pathlib import Path

import celery
import flower
import kombu
import pytest
import redis
from celery.app import backends as celery_backends
from celery.loaders.base import BaseLoader
from celery.worker.consumer import Consumer
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from platform_core.config import fences

ROOT = Path(__file__).resolve().parents[2]


# ── versions ──────────────────────────────────────────────────────────────────────────


def test_the_installed_versions_are_the_verified_ones():
    message = fences.reverify_message(fences.installed_versions())
    assert not message, message


def test_the_installed_versions_are_the_imported_packages():
    assert fences.installed_versions() == {
        "kombu": kombu.__version__,
        "celery": celery.__version__,
        "flower": flower.__version__,
        "redis": redis.__version__,
    }


def test_a_new_kombu_names_exactly_the_kombu_overrides_to_reverify(monkeypatch):
    monkeypatch.setattr(fences, "installed_versions", lambda: {**fences.VERIFIED, "kombu": "5.8.0"})
    with pytest.raises(AssertionError, match="re-verify these overrides"):
        test_the_installed_versions_are_the_verified_ones()  # the guard fails
    message = fences.reverify_message(fences.installed_versions())  # and says this
    assert f"kombu 5.8.0 (verified {fences.VERIFIED['kombu']})" in message
    listed = set(re.findall(r"^  ([a-z0-9-]+): ", message, re.MULTILINE))
    assert listed == {o.id for o in fences.OVERRIDES if o.package == "kombu"}
    for override in fences.OVERRIDES:
        if override.package != "kombu":
            continue
        line = next(line for line in message.splitlines() if line.startswith(f"  {override.id}:"))
        for name in (*override.modules, *override.replaces):
            assert name in line, (override.id, name)
    assert "platform_core/broker/transport.py" not in message  # module names, once each
    assert "platform_core.broker.transport" in message


def test_a_new_celery_and_flower_name_theirs_only(monkeypatch):
    installed = {**fences.VERIFIED, "celery": "6.0.0", "flower": "2.3.0"}
    message = fences.reverify_message(installed)
    listed = set(re.findall(r"^  ([a-z0-9-]+): ", message, re.MULTILINE))
    assert listed == {o.id for o in fences.OVERRIDES if o.package in ("celery", "flower")}
    assert "celery-result-backend" in listed
    assert "flower-metrics-auth" in listed
    assert "celery 6.0.0 (verified" in message
    assert "flower 2.3.0 (verified" in message


# ── the registry itself ───────────────────────────────────────────────────────────────


def _resolve(name: str):
    """An upstream "a.b.C.attr" or "a.b.MAPPING['key']", or our "module:attr"."""
    key = None
    if match := re.fullmatch(r"(.*)\['(.*)'\]", name):
        name, key = match.groups()
    if ":" in name:
        module, _, attrs = name.partition(":")
        parts, obj = attrs.split("."), importlib.import_module(module)
    else:
        parts = name.split(".")
        for end in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:end]))
            except ImportError:
                continue
            parts = parts[end:]
            break
    for attr in parts:
        obj = getattr(obj, attr)
    return obj if key is None else obj[key]


UPSTREAM_NAMES = [(o.id, name) for o in fences.OVERRIDES for name in o.replaces]


@pytest.mark.parametrize(("fence", "name"), UPSTREAM_NAMES)
def test_every_replaced_upstream_name_still_exists(fence, name):
    override = fences.BY_ID[fence]
    try:
        _resolve(name)
    except (ImportError, AttributeError, KeyError) as exc:
        pytest.fail(
            f"fence {fence}: {name} is gone from {override.package} "
            f"(verified {override.verified}): re-verify {', '.join(override.modules)} ({exc!r})"
        )


@pytest.mark.parametrize("fence", list(fences.BY_ID))
def test_our_overriding_code_exists_and_names_its_fence(fence):
    override = fences.BY_ID[fence]
    assert override.package in fences.VERIFIED
    for name in override.ours:
        _resolve(name)
    for module in override.modules:
        source = inspect.getsource(importlib.import_module(module))
        assert re.search(rf"fence:[^\n]*\b{re.escape(fence)}\b", source), (
            f"{module} overrides an upstream internal (fence {fence}) without naming it "
            f"(a 'fence: {fence}' in its docstring or a comment)"
        )


def test_every_fence_named_in_the_platform_is_in_the_registry():
    named = set()
    pattern = re.compile(r"fence: ([a-z][a-z0-9-]+(?:, [a-z][a-z0-9-]+)*)")
    for path in (ROOT / "platform_core").rglob("*.py"):
        named |= set(pattern.findall(path.read_text()))
    ids = {fence for group in named for fence in group.split(", ")}
    assert ids - set(fences.BY_ID) == set()
    assert len(fences.BY_ID) == len(fences.OVERRIDES)  # ids unique


def test_the_architecture_doc_lists_the_registry():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    section = doc.split("## Overrides of upstream internals", 1)[1].split("\n## ", 1)[0]
    assert fences.markdown_table() in section, (
        "docs/architecture.md's table differs from the registry; regenerate it with "
        "python -m platform_core.config.fences"
    )


# ── where each fence's upstream internals are (structure) ─────────────────────────────

STRUCTURE = {}


def structure(fence):
    def register(check):
        STRUCTURE[fence] = check
        return check

    return register


@structure("kombu-transport-alias")
def _transport_alias():
    # A redis:// URL picks its transport class through this alias table.
    resolve = inspect.getsource(kombu.transport.resolve_transport)
    assert "TRANSPORT_ALIASES[transport]" in resolve


@structure("kombu-redis-fetch")
def _fetch():
    assert kombu_redis.Transport.brpop_timeout == 1  # the idle BLMOVE waits as long
    start = inspect.signature(kombu_redis.Channel._brpop_start).parameters
    assert list(start) == ["self", "timeout"]
    source = inspect.getsource(kombu_redis.Channel._brpop_start)
    assert "self._queue_cycle.consume" in source
    assert "self._in_poll = self.client.connection" in source


@structure("kombu-redis-read")
def _read():
    # Why every delivery is guarded: a KeyError from an item's content would otherwise
    # make the worker reconnect.
    connection_errors, _ = kombu_redis.get_redis_error_classes()
    assert KeyError in connection_errors
    source = inspect.getsource(kombu_redis.Channel._brpop_read)
    for used in ("parse_response", "_in_poll = None", "_flush_brpop_reauth", "_deliver"):
        assert used in source, used


@structure("kombu-redis-qos")
def _qos():
    for name in ("append", "ack", "reject", "restore_unacked", "restore_by_tag"):
        assert name in vars(kombu_redis.QoS), name
    qos_init = inspect.getsource(virtual.QoS.__init__)
    assert "_delivered" in qos_init
    assert "_dirty" in qos_init


@structure("kombu-redis-consume")
def _consume():
    assert "_deliver" in vars(virtual.Transport)
    consume = inspect.signature(virtual.Channel.basic_consume).parameters
    assert list(consume)[:3] == ["self", "queue", "no_ack"]


@structure("kombu-redis-held-format")
def _held_format():
    # kombu's virtual Message reads these envelope fields (message_checks.ENVELOPE_FIELDS).
    source = inspect.getsource(virtual.Message.__init__)
    for field in ("'properties'", "'delivery_tag'", "'body_encoding'", "'delivery_info'"):
        assert field in source, field
    # kombu's restore marks a message redelivered as lua/mark_redelivered.lua does
    restore = inspect.getsource(kombu_redis.Channel._do_restore_message)
    assert "payload['headers']['redelivered'] = True" in restore
    assert "payload['properties']['delivery_info']['redelivered'] = True" in restore


@structure("kombu-legacy-unacked-index")
def _legacy_index():
    for option in ("unacked_key", "unacked_index_key", "unacked_mutex_key"):
        assert option in kombu_redis.Channel.from_transport_options, option
    for option in ("unacked_restore_interval", "unacked_restore_throttle"):
        assert option in kombu_redis.Channel.from_transport_options, option


@structure("kombu-redis-publish")
def _publish():
    put = inspect.signature(kombu_redis.Channel._put).parameters
    assert list(put) == ["self", "queue", "message", "kwargs"]
    put_source = inspect.getsource(kombu_redis.Channel._put)
    assert "_publish_batch" in put_source
    assert "lpush" in put_source
    priority = inspect.signature(kombu_redis.Channel._get_message_priority).parameters
    assert list(priority) == ["self", "message", "reverse"]


@structure("celery-result-consumer")
def _result_consumer():
    # What ours reads: the keys waited for (set per instance) and the stored value fed
    # to on_state_change, as Celery's own reconnect does.
    consumer = celery.backends.redis.ResultConsumer
    assert "self.subscribed_to = set()" in inspect.getsource(consumer.__init__)
    reconnect = inspect.getsource(consumer._reconnect_pubsub)
    assert "mget(self.subscribed_to)" in reconnect
    assert "self.on_state_change(self._decode_result(meta), None)" in reconnect
    assert list(inspect.signature(consumer.drain_events).parameters) == ["self", "timeout"]


@structure("kombu-redis-bind")
def _bind():
    # Ours checks for the member, then calls kombu's: it must still write the binding
    # table under keyprefix_queue with the sep-joined member, and routing read it back.
    params = inspect.signature(kombu_redis.Channel._queue_bind).parameters
    assert list(params) == ["self", "exchange", "routing_key", "pattern", "queue"]
    source = inspect.getsource(kombu_redis.Channel._queue_bind)
    assert "self.keyprefix_queue % (exchange,)" in source
    assert "self.sep.join([routing_key or '', pattern or '', queue or ''])" in source
    assert list(inspect.signature(kombu_redis.Channel.get_table).parameters) == [
        "self",
        "exchange",
    ]
    assert "split(self.sep)" in inspect.getsource(kombu_redis.Channel.get_table)


@structure("kombu-redis-purge")
def _purge():
    assert list(inspect.signature(kombu_redis.Channel._purge).parameters) == ["self", "queue"]


@structure("kombu-redis-sentinel")
def _sentinel():
    # Our pool replaces this method whole; kombu's _get_pool calls it, and
    # _disconnect_pools closes the sentinel connections it keeps in these attributes.
    params = inspect.signature(kombu_redis.SentinelChannel._sentinel_managed_pool).parameters
    assert list(params) == ["self", "asynchronous"]
    assert "_sentinel_managed_pool" in inspect.getsource(kombu_redis.SentinelChannel._get_pool)
    disconnect = inspect.getsource(kombu_redis.Channel._disconnect_pools)
    assert "_sentinel_manager" in disconnect
    assert "_async_sentinel_manager" in disconnect
    assert "master_name" in kombu_redis.SentinelChannel.from_transport_options


@structure("celery-result-backend-sentinel")
def _result_backend_sentinel():
    source = inspect.getsource(celery.backends.redis.SentinelBackend._get_pool)
    assert "self._get_sentinel_instance(**params)" in source
    assert "master_for" in source


@structure("celery-consumer-reconnect")
def _consumer_reconnect():
    # Celery calls conn.ensure_connection(errback, max_retries, callback=…) without
    # intervals; kombu's defaults are the ones replaced (by keyword, through a partial).
    source = inspect.getsource(Consumer.ensure_connected)
    assert "conn.ensure_connection(" in source
    assert "interval_" not in source
    params = inspect.signature(kombu.Connection._ensure_connection).parameters
    assert {"interval_start", "interval_step", "interval_max"} <= set(params)


@structure("celery-worker-active-requests")
def _active_requests():
    from celery.worker import request, state

    assert isinstance(state.active_requests, type(state.reserved_requests))  # a WeakSet
    assert isinstance(vars(request.Request)["message"], property)
    # Set once the request is handed to the pool (a weakref to the pool's result).
    assert vars(request.Request)["_apply_result"] is None
    assert "self._apply_result = " in inspect.getsource(request.Request.execute_using_pool)


@structure("celery-pool-flush")
def _pool_flush():
    from celery.concurrency import prefork

    assert "self.flush = getattr(P, 'flush', None)" in inspect.getsource(prefork.TaskPool.on_start)
    closing = inspect.getsource(Consumer.on_close)
    assert "if self.pool and self.pool.flush:" in closing
    assert "self.pool.flush()" in closing


@structure("redis-sentinel-managed-connection")
def _sentinel_managed_connection():
    from redis.connection import AbstractConnection
    from redis.sentinel import SentinelManagedConnection

    assert list(inspect.signature(SentinelManagedConnection.connect_to).parameters) == [
        "self",
        "address",
    ]
    assert "connect" in vars(SentinelManagedConnection)  # asks the sentinels
    # What silent_hosts corrects: a dropped connection reconnects to the host it had.
    sending = inspect.getsource(AbstractConnection.send_packed_command)
    assert "self.connect_check_health(check_health=False)" in sending
    assert list(inspect.signature(AbstractConnection.send_packed_command).parameters) == [
        "self",
        "command",
        "check_health",
    ]
    # The probe finds the pool (its connection class and kwargs) through the proxy.
    from redis.sentinel import SentinelConnectionPool

    pool = SentinelConnectionPool("m", sentinel_manager=None)
    proxy = pool.connection_kwargs["connection_pool"]
    assert proxy.connection_pool_ref() is pool


@structure("kombu-redis-client")
def _client():
    params = inspect.signature(kombu_redis.Channel.conn_or_acquire).parameters
    assert list(params) == ["self", "client"]
    assert "_create_client" in vars(kombu_redis.Channel)


@structure("kombu-redis-poller-acks")
def _poller():
    assert "on_poll_start" in vars(kombu_redis.MultiChannelPoller)
    assert "_channels" in inspect.getsource(kombu_redis.MultiChannelPoller.__init__)
    assert "self.cycle = MultiChannelPoller()" in inspect.getsource(kombu_redis.Transport.__init__)
    assert "register_with_event_loop" in vars(kombu_redis.Transport)
    # The fetch's connection is the channel's async client's own; a disconnect is the drop.
    registered = inspect.getsource(kombu_redis.MultiChannelPoller._client_registered)
    assert "client.connection = client.connection_pool.get_connection" in registered
    assert "connection.disconnect()" in inspect.getsource(
        kombu_redis.MultiChannelPoller.maybe_check_brpop_health
    )
    assert "_brpop_health_tref = loop.call_repeatedly" in inspect.getsource(
        kombu_redis.Transport.register_with_event_loop
    )
    # A connection error raised by a timer reaches the consumer (its reconnect).
    import celery.worker.loops

    assert "hub.propagate_errors = errors" in inspect.getsource(celery.worker.loops.asynloop)


@structure("kombu-priority-keys")
def _priority_keys():
    # transport.priority_keys names each priority step's list as Channel._q_for_pri does.
    source = inspect.getsource(kombu_redis.Channel._q_for_pri)
    assert "self.sep" in source
    assert "self.priority(pri)" in source
    assert kombu_redis.Channel.sep == "\x06\x16"
    assert list(kombu_redis.Channel.priority_steps) == [0, 3, 6, 9]


@structure("celery-result-backend")
def _result_backend():
    assert "loader.override_backends" in inspect.getsource(celery_backends.by_name)
    assert BaseLoader.override_backends == {}
    # The loader replaces the dict only when the configuration names one.
    assert "override_backends" in inspect.getsource(BaseLoader.config_from_object)
    assert "on_task_call" in vars(celery.backends.redis.RedisBackend)


@structure("celery-result-store")
def _result_store():
    # lua/store_result.lua does what these do: read the stored meta and keep a SUCCESS,
    # else SET (with the failure expiry for a FAILURE) and PUBLISH on the key's channel.
    store = inspect.getsource(celery.backends.base.BaseKeyValueStoreBackend._store_result)
    assert "current_meta['status'] == states.SUCCESS" in store
    assert "self._set_with_state(self.get_key_for_task(task_id), self.encode(meta), state)" in (
        store
    )
    redis_backend = celery.backends.redis.RedisBackend
    assert "self.failure_expires" in inspect.getsource(redis_backend._set_with_state)
    setter = inspect.getsource(redis_backend._set)
    assert "pipe.setex(key, expires, value)" in setter
    assert "pipe.publish(key, value)" in setter
    assert "expires = self.expires" in setter


@structure("celery-result-handback")
def _result_handback():
    # tasks.result_handback wraps pool.apply_async as Celery's Request calls it: the trace
    # function with the task id second, the callback that acknowledges getting
    # (failed, retval, runtime) back.
    request_cls = inspect.getsource(celery.worker.request.create_request_cls)
    assert "apply_async = pool.apply_async" in request_cls
    assert "args=(self.type, task_id, self.request_dict, self.body," in request_cls
    assert "callback=self.on_success," in request_cls
    assert "failed, retval, runtime = failed__retval__runtime" in request_cls
    assert "self.acknowledge()" in request_cls
    for trace in (celery.app.trace.fast_trace_task, celery.app.trace.trace_task_ret):
        assert list(inspect.signature(trace).parameters)[:2] in (
            ["task", "uuid"],
            ["name", "uuid"],
        )
        assert "return (1, R, T) if I else (0, Rstr, T)" in inspect.getsource(trace)


@structure("celery-worker-revoke")
def _worker_revoke():
    # tasks.cancellation._stop does what the revoke control command does for one worker.
    from celery.worker import control, request

    revoke = inspect.getsource(control._revoke)
    assert "worker_state.revoked.update(task_ids)" in revoke
    assert "for request in _find_requests_by_id(task_ids):" in revoke
    assert "request.terminate(state.consumer.pool, signal=signum)" in revoke
    finder = inspect.getsource(control._find_requests_by_id)
    assert "get_request=worker_state.requests.__getitem__" in finder
    terminate = inspect.getsource(request.Request.terminate)
    assert "pool.terminate_job(self.worker_pid, signal)" in terminate
    assert "self._terminate_on_ack = pool, signal" in terminate


@structure("celery-consumer-bad-messages")
def _consumer_handlers():
    # platform_core.tasks.consumer replaces these; Celery calls them by these names and
    # sends these signals from them (tests/unit/test_consumer_signals.py compares).
    for name in (
        "create_task_handler",
        "on_decode_error",
        "on_unknown_message",
        "on_invalid_task",
        "on_unknown_task",
    ):
        assert callable(getattr(Consumer, name)), name
    handler = inspect.getsource(Consumer.create_task_handler)
    for call in ("on_unknown_message(", "on_unknown_task(", "on_invalid_task(", "on_decode_error("):
        assert call in handler, call
    assert "signals.task_rejected.send" in inspect.getsource(Consumer.on_invalid_task)
    assert "signals.task_rejected.send" in inspect.getsource(Consumer.on_unknown_message)
    assert "signals.task_unknown.send" in inspect.getsource(Consumer.on_unknown_task)


@structure("celery-consumer-events")
def _consumer_events():
    assert "self.hub.call_soon(self._flush_events_promise)" in inspect.getsource(
        Consumer.on_send_event_buffered
    )
    assert "event_dispatcher.flush()" in inspect.getsource(Consumer._flush_events)


@structure("celery-task-header")
def _task_header():
    assert "'__header__': self.type_checker(" in inspect.getsource(celery.Celery._task_from_fun)


@structure("flower-metrics-auth")
def _flower_metrics():
    from flower import urls
    from flower.views import monitor

    routes = [h for h in urls.handlers if isinstance(h, tuple) and h[0] == r"/metrics"]
    assert len(routes) == 1
    assert routes[0][1] is monitor.Metrics or getattr(routes[0][1], "platform_fenced", False)


def test_every_fence_has_a_structural_check():
    assert set(STRUCTURE) == set(fences.BY_ID)


@pytest.mark.parametrize("fence", list(fences.BY_ID))
def test_the_upstream_internals_are_where_the_fence_expects_them(fence):
    override = fences.BY_ID[fence]
    try:
        STRUCTURE[fence]()
    except AssertionError as exc:
        pytest.fail(
            f"fence {fence}: {override.package} {fences.installed_versions()[override.package]} "
            f"changed {', '.join(override.replaces)} (verified {override.verified}); "
            f"re-verify {', '.join(override.modules)}: {exc!r}"
        )


def test_a_moved_internal_fails_naming_its_fence(monkeypatch):
    monkeypatch.setattr(kombu_redis.Channel, "_purge", lambda self, queue, extra=None: 0)
    with pytest.raises(pytest.fail.Exception) as failure:
        test_the_upstream_internals_are_where_the_fence_expects_them("kombu-redis-purge")
    message = str(failure.value)
    assert message.startswith("fence kombu-redis-purge: kombu ")
    assert "kombu.transport.redis.Channel._purge" in message
    assert "re-verify platform_core.broker.channel" in message
    monkeypatch.delattr(kombu_redis.Channel, "_brpop_read")
    with pytest.raises(pytest.fail.Exception, match=r"fence kombu-redis-read: .* is gone"):
        test_every_replaced_upstream_name_still_exists(
            "kombu-redis-read", "kombu.transport.redis.Channel._brpop_read"
        )
