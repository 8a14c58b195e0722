"""Which sentinel a process asks first (broker/clients.py): the order listed, but those on
a host whose Redis went silent (powered off together) and those that did not answer last.
Pure ordering: no sentinel is contacted (redis-py connects on first use)."""

import pytest
import redis

from platform_core.broker import clients, silent_hosts


@pytest.fixture(autouse=True)
def nothing_silent(monkeypatch):
    monkeypatch.setattr(silent_hosts, "_marked", {})
    monkeypatch.setattr(clients, "_silent_sentinels", {})


def _asked_in_order(*hosts) -> list[str]:
    listed = [redis.Redis(host=host, port=26379) for host in hosts]
    ordered = sorted(listed, key=clients._last_silent)
    return [sentinel.connection_pool.connection_kwargs["host"] for sentinel in ordered]


def test_a_sentinel_on_a_host_whose_redis_went_silent_is_asked_last():
    silent_hosts.mark(("10.0.0.1", 6379))  # the primary's host, powered off

    assert _asked_in_order("10.0.0.1", "10.0.0.2", "10.0.0.3") == [
        "10.0.0.2",
        "10.0.0.3",
        "10.0.0.1",
    ]


def test_otherwise_the_order_listed():
    assert _asked_in_order("10.0.0.1", "10.0.0.2", "10.0.0.3") == [
        "10.0.0.1",
        "10.0.0.2",
        "10.0.0.3",
    ]
