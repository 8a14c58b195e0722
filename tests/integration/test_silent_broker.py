"""A broker (or a sentinel) that goes silent — its host powered off or cut off, so no
reset ever reaches the client — costs a client one timeout, not one per retry or per
connection (broker/clients.py, broker/silent_hosts.py). Real redis-server processes,
frozen with SIGSTOP (every connection to them left open and unanswered).
"""

import signal
import time

import pytest
import redis

from harness.processes import RedisServer, free_port
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
