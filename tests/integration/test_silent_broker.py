"""A broker (or a sentinel) that goes silent — its host powered off or cut off, so no
reset ever reaches the client — costs a client one timeout, not one per retry or per
connection (broker/clients.py, broker/silent_hosts.py). Real redis-server processes,
frozen with SIGSTOP (every connection to them left open and unanswered).
"""

import signal
import time

import pytest
import redis

from harness.processes import RedisServer, free_port, wait_for
from harness.sentinel import MASTER_NAME, BrokerGroup
from platform_core.broker import clients
from platform_core.config import timeouts


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path, free_port(), appendonly=False)
    server.start()
    yield server
    server.process.send_signal(signal.SIGCONT)
    server.kill_9()


@pytest.fixture
def group(tmp_path, settings):
    group = BrokerGroup(tmp_path / "group").start()
    settings.PLATFORM_BROKER_MASTER_NAME = MASTER_NAME
    yield group
    group.stop()


def seconds_to_fail(call, error=redis.RedisError) -> float:
    started = time.monotonic()
    with pytest.raises(error):
        call()
    return time.monotonic() - started


def test_a_silent_redis_costs_one_timeout_not_eleven(redis_server):
    client = clients.connect(redis_server.url)
    assert client.ping()
    redis_server.process.send_signal(signal.SIGSTOP)
    # redis-py 8's default retries would make this 11 x COMMAND_SECONDS.
    took = seconds_to_fail(client.ping, redis.TimeoutError)
    assert took < timeouts.COMMAND_SECONDS + 1, took


def test_a_silent_sentinel_is_asked_last_by_every_new_client(group):
    silent = group.sentinels[0]
    silent.freeze()
    addresses = group.sentinel_addresses()  # the silent one listed first
    primary = group.primary().address
    password = {"password": group.password}

    started = time.monotonic()
    assert clients.Sentinel(addresses, password).discover_master(MASTER_NAME) == primary
    first = time.monotonic() - started
    started = time.monotonic()
    assert clients.Sentinel(addresses, password).discover_master(MASTER_NAME) == primary
    second = time.monotonic() - started

    assert timeouts.SENTINEL_SECONDS <= first < timeouts.SENTINEL_SECONDS + 1, first
    assert second < 0.5, second  # a new client in the same process does not wait again


def test_connections_to_a_silent_primary_give_up_together(group):
    url = group.sentinel_url()
    first, second = clients.connect(url), clients.connect(url)  # two pools, two sockets
    assert first.ping()
    assert second.ping()
    group.primary().freeze()

    took_first = seconds_to_fail(first.ping, redis.TimeoutError)
    took_second = seconds_to_fail(second.ping, redis.ConnectionError)

    assert took_first < timeouts.COMMAND_SECONDS + 1, took_first
    assert took_second < 0.5, took_second  # marked by the first one's timeout


def test_a_silent_primary_is_not_waited_on_again_until_a_probe_hears_it(group):
    url = group.sentinel_url()
    client = clients.connect(url)
    assert client.ping()
    silent = [group.nodes[1], group.primary()]  # the replica too: no failover, the
    for node in silent:  # sentinels keep naming the silent primary
        node.freeze()
    try:
        seconds_to_fail(client.ping, redis.TimeoutError)  # marks it
        # A new connection (a worker's reconnect, a producer's next send) fails at once.
        took_new = seconds_to_fail(clients.connect(url).ping, redis.ConnectionError)
        assert took_new < 0.5, took_new
    finally:
        for node in silent:
            node.thaw()
    thawed = time.monotonic()

    def a_new_client_answers():
        try:
            return clients.connect(url).ping()
        except redis.ConnectionError:  # refused until a probe hears it
            time.sleep(0.05)
            return False

    wait_for(a_new_client_answers, timeouts.COMMAND_SECONDS + 2, "a probe to hear it")
    # At worst a probe sent while it was silent times out first, then the next one hears it.
    assert time.monotonic() - thawed < timeouts.COMMAND_SECONDS + 1
