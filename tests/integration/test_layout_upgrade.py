"""An upgrade from the flat key layout: what a previous version left in Redis is moved
into the queues' rooms, nothing lost, nothing run twice, and a second run does nothing."""

import json

import pytest
import redis

from platform_core.broker import keys
from platform_core.broker.layout_upgrade import upgrade
from platform_core.broker.transport import priority_keys

QUEUES = ("upgrade_a", "upgrade_b")


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    for pattern in ("platform:delayed:upgrade_*", "platform:held:*upgrade_*"):
        for key in client.scan_iter(match=pattern):
            client.delete(key)
    for queue in QUEUES:
        client.delete(queue, *client.keys(f"{keys.Room(queue).prefix}*"))


def item(tag: str) -> bytes:
    return json.dumps({"body": "", "headers": {"id": tag}, "properties": {}}).encode()


def test_the_flat_layout_moves_into_the_rooms(client):
    low = priority_keys("upgrade_a")[9]
    client.zadd("platform:delayed:upgrade_a", {item("d1"): 111})
    client.zadd(f"platform:delayed:{low}", {item("d2"): 222})
    client.rpush("platform:held:host:1:ab:upgrade_b", item("h1"), item("h2"))
    client.hset("platform:rejected", "upgrade_a:bad-body", 3)
    client.hset("platform:redelivered", "upgrade_b", 2)
    client.hset("platform:clock", mapping={"offset": -1500, "run_id": "x", "last": 5})

    moved = upgrade(client, QUEUES)

    assert (moved.delayed, moved.handed_back, moved.counters) == (2, 2, 2)
    assert client.zrange(keys.delayed("upgrade_a"), 0, -1, withscores=True) == [(item("d1"), 111)]
    assert client.zscore(keys.delayed(low), item("d2")) == 222
    handed = [json.loads(raw)["headers"] for raw in client.lrange("upgrade_b", 0, -1)]
    assert {h["id"] for h in handed} == {"h1", "h2"}
    assert all(h["redelivered"] for h in handed)  # marked, so the poison cap counts them
    assert client.hget(keys.Room("upgrade_a").rejected, "bad-body") == b"3"
    assert client.hget(keys.Room("upgrade_b").redelivered, "upgrade_b") == b"2"
    assert client.hget(keys.Room("upgrade_a").clock, "offset") == b"-1500"  # no time moves
    assert not client.exists("platform:delayed:upgrade_a", "platform:held:host:1:ab:upgrade_b")
    assert not client.exists("platform:clock", "platform:rejected")

    again = upgrade(client, QUEUES)
    assert (again.delayed, again.handed_back, again.counters) == (0, 0, 0)
    assert client.llen("upgrade_b") == 2
