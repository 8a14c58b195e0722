"""The worker's ack-and-fetch script, run on the test's real redis-server, records a
delivery exactly as stock kombu does, so kombu's redelivery sweep can restore it."""

import json
import time

import pytest
import redis
from kombu import Connection, Exchange, Queue

from platform_core.redis_scripts import ACK_AND_FETCH

INDEX, UNACKED = "script_test_unacked_index", "script_test_unacked"


@pytest.fixture
def server(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.delete(INDEX, UNACKED, "script_test", "script_test_low")


def fetch(server, queues, count, acks=(), largest=1024 * 1024, now=None, record=None):
    now = now or time.time()
    record = record or "1" * len(queues)
    reply = server.eval(
        ACK_AND_FETCH,
        2 + len(queues),
        INDEX,
        UNACKED,
        *queues,
        now,
        count,
        largest,
        record,
        *acks,
    )
    return [tuple(reply[i : i + 3]) for i in range(0, len(reply), 3)]


def publish(redis_url, queue, body):
    with Connection(redis_url) as connection:
        exchange = Exchange(queue, type="direct")
        connection.Producer().publish(
            body, exchange=exchange, routing_key=queue, declare=[Queue(queue, exchange, queue)]
        )


def test_a_fetched_message_is_recorded_as_kombu_records_it(server, redis_url):
    publish(redis_url, "script_test", {"n": 1})
    [(key, item, tag)] = fetch(server, ["script_test"], 5, now=1000.5)
    envelope = json.loads(item)
    assert key == b"script_test"
    assert tag.decode() == envelope["properties"]["delivery_tag"]
    # kombu's QoS.append: ZADD index tag time; HSET unacked tag [payload, exchange, key]
    assert server.zscore(INDEX, tag) == 1000.5
    assert json.loads(server.hget(UNACKED, tag)) == [envelope, "script_test", "script_test"]


def test_acks_remove_the_record_and_count_bounds_the_fetch(server, redis_url):
    for n in range(3):
        publish(redis_url, "script_test", {"n": n})
    first = fetch(server, ["script_test"], 2)
    assert len(first) == 2
    assert server.llen("script_test") == 1
    second = fetch(server, ["script_test"], 2, acks=[tag for _, _, tag in first])
    assert len(second) == 1
    assert server.zrange(INDEX, 0, -1) == [second[0][2]]
    assert server.hkeys(UNACKED) == [second[0][2]]


def test_queues_are_read_in_the_order_given(server):
    server.lpush("script_test_low", "low")
    server.lpush("script_test", "high")
    assert [item for _, item, _ in fetch(server, ["script_test", "script_test_low"], 1)] == [
        b"high"
    ]


@pytest.mark.parametrize(
    "item", [b"not json", b"[1, 2]", b'{"properties": {"delivery_tag": 7}}', b'{"body": "x"}']
)
def test_what_is_not_an_envelope_is_handed_over_unrecorded(server, item):
    server.lpush("script_test", item)
    assert fetch(server, ["script_test"], 5) == [(b"script_test", item, None)]
    assert server.zcard(INDEX) == 0
    assert server.hlen(UNACKED) == 0


def test_items_too_large_to_decode_in_redis_are_left_to_python(server, redis_url):
    publish(redis_url, "script_test", {"n": "x" * 100})
    [(_, item, tag)] = fetch(server, ["script_test"], 5, largest=50)
    assert tag is None
    assert len(item) > 50
    assert server.zcard(INDEX) == 0


def test_an_empty_queue_returns_nothing(server):
    assert fetch(server, ["script_test"], 5) == []


def test_deliveries_of_a_no_ack_queue_are_not_recorded(server, redis_url):
    """Control replies (Flower's inspect) are consumed without acks: a record of them
    would stay in the index and be restored into the reply queue again and again."""
    publish(redis_url, "script_test", {"n": 1})
    publish(redis_url, "script_test_low", {"n": 2})
    fetched = fetch(server, ["script_test", "script_test_low"], 5, record="01")
    assert [(key, tag is None) for key, _, tag in fetched] == [
        (b"script_test", True),
        (b"script_test_low", False),
    ]
    assert server.hlen(UNACKED) == 1


def test_a_tag_already_in_the_index_is_not_overwritten(server, redis_url):
    """A copied message carries the tag of one already delivered: the first record stays."""
    publish(redis_url, "script_test", {"n": 1})
    [(_, item, tag)] = fetch(server, ["script_test"], 5)
    server.lpush("script_test", item)
    [(_, _, second_tag)] = fetch(server, ["script_test"], 5)
    assert tag is not None
    assert second_tag is None
    assert server.hlen(UNACKED) == 1
