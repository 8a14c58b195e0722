"""The lease scripts (platform_core.broker.scripts), run on the test's real redis-server:
a fetched message is recorded under its worker in the same step as the pop; an ack
removes exactly it; a live lease is never swept, an expired one exactly once, its
messages back at the front of their queues, oldest first, marked redelivered."""

import base64
import json
import time

import pytest
import redis
from kombu import Connection, Exchange, Queue

from platform_core.broker import scripts as redis_scripts
from platform_core.broker.leases import Lease
from platform_core.broker.scripts import FETCH, RENEW, SWEEP, held_key

QUEUES = ("script_test", "script_test_low")
# The scripts take their lease keys as arguments: the test uses its own, because the
# session's workers sweep platform:leases and would take the test's expired lease first.
LEASES, LEASE_SOURCES, LEASE_RENEWED = "test:leases", "test:lease_sources", "test:lease_renewed"
REDELIVERED = "test:redelivered"
LEASE_KEYS = (LEASES, LEASE_SOURCES, LEASE_RENEWED)


@pytest.fixture
def server(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    held = [key for queue in QUEUES for key in client.keys(held_key("*", queue))]
    client.delete(*LEASE_KEYS, REDELIVERED, *QUEUES, *held)


def take(server, worker, milliseconds=60_000, sources=QUEUES):
    return server.eval(RENEW, 3, *LEASE_KEYS, worker, milliseconds, "\n".join(sources), "new")


def fetch(server, worker, queues, count, acks=(), record=None):
    record = record or "1" * len(queues)
    pairs = [part for pair in acks for part in pair]
    reply = server.eval(
        FETCH, 1 + len(queues), LEASES, *queues, worker, count, record, len(acks), *pairs
    )
    return [tuple(reply[i : i + 3]) for i in range(0, len(reply), 3)]


def sweep(server):
    swept, restored, *workers = server.eval(SWEEP, 4, *LEASE_KEYS, REDELIVERED, 20)
    return swept, restored, [worker.decode() for worker in workers]


def publish(redis_url, queue, body):
    with Connection(redis_url) as connection:
        exchange = Exchange(queue, type="direct")
        connection.Producer().publish(
            body, exchange=exchange, routing_key=queue, declare=[Queue(queue, exchange, queue)]
        )


def test_a_fetched_message_is_held_under_its_worker(server, redis_url):
    take(server, "w1")
    publish(redis_url, "script_test", {"n": 1})
    [(key, item, recorded)] = fetch(server, "w1", ["script_test"], 5)
    assert (key, recorded) == (b"script_test", 1)
    assert server.lrange(held_key("w1", "script_test"), 0, -1) == [item]
    assert server.llen("script_test") == 0


def test_acks_remove_exactly_their_message_and_count_bounds_the_fetch(server, redis_url):
    take(server, "w1")
    for n in range(3):
        publish(redis_url, "script_test", {"n": n})
    first = fetch(server, "w1", ["script_test"], 2)
    assert len(first) == 2
    held = held_key("w1", "script_test")
    second = fetch(server, "w1", ["script_test"], 2, acks=[(held, item) for _, item, _ in first])
    assert len(second) == 1
    assert server.lrange(held, 0, -1) == [second[0][1]]


def test_queues_are_read_in_the_order_given(server):
    take(server, "w1")
    server.lpush("script_test_low", "low")
    server.lpush("script_test", "high")
    fetched = fetch(server, "w1", ["script_test", "script_test_low"], 1)
    assert [item for _, item, _ in fetched] == [b"high"]


def test_deliveries_of_a_no_ack_queue_are_not_held(server, redis_url):
    """Control replies (Flower's inspect) are consumed without acks: a record of them
    would never be removed and would be handed out again and again."""
    take(server, "w1")
    publish(redis_url, "script_test", {"n": 1})
    publish(redis_url, "script_test_low", {"n": 2})
    fetched = fetch(server, "w1", ["script_test", "script_test_low"], 5, record="01")
    assert [(key, recorded) for key, _, recorded in fetched] == [
        (b"script_test", 0),
        (b"script_test_low", 1),
    ]
    assert server.llen(held_key("w1", "script_test")) == 0
    assert server.llen(held_key("w1", "script_test_low")) == 1


def test_a_worker_without_a_lease_fetches_nothing(server, redis_url):
    publish(redis_url, "script_test", {"n": 1})
    with pytest.raises(redis.ResponseError, match="LEASELOST"):
        fetch(server, "nobody", ["script_test"], 5)
    assert server.llen("script_test") == 1


def test_a_live_lease_is_never_swept(server, redis_url):
    take(server, "alive", milliseconds=60_000)
    publish(redis_url, "script_test", {"n": 1})
    fetch(server, "alive", ["script_test"], 5)
    assert sweep(server) == (0, 0, [])
    assert server.llen(held_key("alive", "script_test")) == 1
    seconds, micros = server.time()
    renewed = int(server.hget(LEASE_RENEWED, "alive"))  # Redis' clock, for the metrics
    assert 0 <= seconds * 1000 + micros // 1000 - renewed < 5_000


def test_an_expired_lease_is_swept_once_oldest_first_and_marked(server, redis_url):
    take(server, "dead", milliseconds=200)
    take(server, "alive", milliseconds=60_000)
    for n in range(3):
        publish(redis_url, "script_test", {"n": n})
    fetch(server, "dead", ["script_test"], 3)
    publish(redis_url, "script_test", {"n": 3})  # waiting behind what the dead one held
    time.sleep(0.3)
    assert sweep(server) == (1, 3, ["dead"])
    assert sweep(server) == (0, 0, [])  # a second sweeper finds nothing
    # Back at the front (the right end, where consumers pop), oldest first.
    items = [json.loads(raw) for raw in reversed(server.lrange("script_test", 0, -1))]
    assert [json.loads(base64.b64decode(item["body"]))["n"] for item in items] == [0, 1, 2, 3]
    assert [item["properties"]["delivery_info"].get("redelivered") for item in items] == [
        True,
        True,
        True,
        None,
    ]
    assert server.zscore(LEASES, "dead") is None
    assert server.zscore(LEASES, "alive") is not None
    # Counted per queue key for the metrics; the swept worker's renewal stamp is gone.
    assert server.hgetall(REDELIVERED) == {b"script_test": b"3"}
    assert server.hexists(LEASE_RENEWED, "dead") is False
    assert server.hexists(LEASE_RENEWED, "alive") is True


def test_a_renewal_after_a_sweep_says_the_lease_was_lost(server):
    take(server, "late", milliseconds=100)
    time.sleep(0.2)
    sweep(server)
    renewed = server.eval(RENEW, 3, *LEASE_KEYS, "late", 1000, "script_test", "renew")
    assert renewed == 0


def test_the_lease_thread_renews_while_the_caller_is_busy(server):
    """Renewal does not depend on the caller: a lease of 0.6 s outlives 2 s of sleep."""
    lease = Lease(server, seconds=0.6, sweep_seconds=0.2)
    lease.take(["script_test"])
    time.sleep(2)
    sweep(server)
    assert server.zscore(redis_scripts.LEASES, lease.worker_id) is not None
    lease.release()
    assert server.zscore(redis_scripts.LEASES, lease.worker_id) is None


def test_the_mark_keeps_empty_arrays_and_objects_as_they_were(server):
    item = (
        '{"body": "W10=", "headers": {"stamps": {}, "a": []}, "properties": {"delivery_info": {}}}'
    )
    take(server, "dead", milliseconds=100, sources=["script_test"])
    server.lpush(held_key("dead", "script_test"), item)
    time.sleep(0.2)
    sweep(server)
    restored = json.loads(server.rpop("script_test"))
    assert restored["headers"] == {"stamps": {}, "a": []}
    assert restored["properties"]["delivery_info"] == {"redelivered": True}
