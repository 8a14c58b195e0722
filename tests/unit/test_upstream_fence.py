"""The kombu and Celery internals the platform relies on, checked against the versions
they were verified with. When an upgrade changes one of these, this fails first and
says where to look; re-verify the named platform code, then update the versions here.
"""

import inspect

import celery
import kombu
from celery.worker.consumer import Consumer
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

VERIFIED = {"kombu": "5.7.0", "celery": "5.7.0"}


def test_the_versions_are_the_verified_ones():
    assert {"kombu": kombu.__version__, "celery": celery.__version__} == VERIFIED, (
        "re-verify platform_core/broker/transport.py, redis_scripts.py, delays.py, consumer.py "
        "and message_checks.py against the new versions, then update VERIFIED"
    )


def test_kombu_still_counts_key_errors_as_connection_errors():
    # Why platform_core.broker.transport guards every delivery: a KeyError from an item's
    # content would otherwise make the worker reconnect.
    connection_errors, _ = kombu_redis.get_redis_error_classes()
    assert KeyError in connection_errors


def test_the_transport_internals_are_where_the_platform_uses_them():
    # platform_core.broker.transport: the fetch script and BLMOVE replace _brpop_start and
    # _brpop_read; deliveries are held per worker (leases), so QoS.append/ack/reject/
    # restore_unacked are replaced and rely on virtual.QoS's _delivered and _dirty.
    assert kombu_redis.Transport.brpop_timeout == 1  # the idle BLMOVE waits as long
    for name in ("_brpop_start", "_brpop_read", "_q_for_pri"):
        assert hasattr(kombu_redis.Channel, name), name
    for name in ("append", "ack", "reject", "restore_unacked", "restore_by_tag"):
        assert name in vars(kombu_redis.QoS), name
    qos_init = inspect.getsource(virtual.QoS.__init__)
    assert "_delivered" in qos_init
    assert "_dirty" in qos_init
    assert "_deliver" in vars(virtual.Transport)
    consume = inspect.signature(virtual.Channel.basic_consume).parameters
    assert list(consume)[:3] == ["self", "queue", "no_ack"]
    # kombu's virtual Message reads these envelope fields (message_checks.ENVELOPE_FIELDS).
    source = inspect.getsource(virtual.Message.__init__)
    for field in ("'properties'", "'delivery_tag'", "'body_encoding'", "'delivery_info'"):
        assert field in source, field


def test_the_publish_path_the_delayed_set_takes_over():
    # platform_core.broker.transport.Channel._put parks a far ETA instead of kombu's LPUSH; it
    # relies on _put's arguments, its publish-batch keyword and the priority helper.
    put = inspect.signature(kombu_redis.Channel._put).parameters
    assert list(put) == ["self", "queue", "message", "kwargs"]
    put_source = inspect.getsource(kombu_redis.Channel._put)
    assert "_publish_batch" in put_source
    assert "lpush" in put_source
    priority = inspect.signature(kombu_redis.Channel._get_message_priority).parameters
    assert list(priority) == ["self", "message", "reverse"]
    # Channel._purge adds the delayed sets to what kombu purges.
    assert list(inspect.signature(kombu_redis.Channel._purge).parameters) == ["self", "queue"]


def test_the_consumer_hooks_are_the_ones_the_platform_overrides():
    # platform_core.tasks.consumer wraps these; Celery calls them by these names.
    for name in (
        "create_task_handler",
        "on_decode_error",
        "on_unknown_message",
        "on_invalid_task",
        "on_unknown_task",
    ):
        assert callable(getattr(Consumer, name)), name


def test_flower_is_the_version_its_metrics_fence_was_verified_with():
    import flower

    from platform_core.observe.flower_fence import VERIFIED_FLOWER

    assert flower.__version__ == VERIFIED_FLOWER, (
        "re-verify platform_core/observe/flower_fence.py (Flower's /metrics route and its "
        "basic-auth check) against the new Flower, then update VERIFIED_FLOWER"
    )


def test_the_queue_keys_are_kombus_priority_lists():
    # platform_core.broker.transport.priority_keys names each priority step's list as kombu's
    # Channel._q_for_pri does; the queue metrics read those lists.
    source = inspect.getsource(kombu_redis.Channel._q_for_pri)
    assert "self.sep" in source
    assert "self.priority(pri)" in source
    assert kombu_redis.Channel.sep == "\x06\x16"
    assert list(kombu_redis.Channel.priority_steps) == [0, 3, 6, 9]
