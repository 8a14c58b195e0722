"""Which sentinel a process asks first (broker/clients.py): the order listed, but those on
a host whose Redis went silent (powered off together) and those that did not answer last.
Pure ordering: no sentinel is contacted (redis-py connects on first use)."""

import redis

from platform_core.broker import clients, silent_hosts


def _sentinels(*hosts):
    return [redis.Redis(host=host, port=26379) for host in hosts]


def test_a_sentinel_on_a_host_whose_redis_went_silent_is_asked_last(monkeypatch):
    monkeypatch.setattr(silent_hosts, "_marked", {})
    monkeypatch.setattr(clients, "_silent_sentinels", {})
    listed = _sentinels("10.0.0.1", "10.0.0.2", "10.0.0.3")
    silent_hosts.mark(("10.0.0.1", 6379))  # the primary's host, powered off

    order = [
        s.connection_pool.connection_kwargs["host"]
        for s in sorted(listed, key=clients._last_silent)
    ]

    assert order == ["10.0.0.2", "10.0.0.3", "10.0.0.1"]


def test_otherwise_the_order_listed(monkeypatch):
    monkeypatch.setattr(silent_hosts, "_marked", {})
    monkeypatch.setattr(clients, "_silent_sentinels", {})
    listed = _sentinels("10.0.0.1", "10.0.0.2", "10.0.0.3")

    order = [
        s.connection_pool.connection_kwargs["host"]
        for s in sorted(listed, key=clients._last_silent)
    ]

    assert order == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
