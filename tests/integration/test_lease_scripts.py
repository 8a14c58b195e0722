"""The lease scripts (platform_core/broker/lua), run on the test's real redis-server:
a fetched message is recorded under its worker in the same step as the pop; an ack
removes exactly it; a live lease is never swept, an expired one exactly once, its
messages back at the front of their queues, oldest first, marked redelivered."""

import base64
import json
import time

import pytest
import redis
from kombu import Connection, Exchange, Queue
from kombu.transport import redis as kombu_redis

from platform_core.broker import keys
from platform_core.broker.leases import Lease, lease_keys
from platform_core.broker.scripts import FETCH, RENEW, RESTORE, SWEEP

# A queue of the test's own (its room is nobody else's: the session's workers sweep
# theirs) and its lowest priority step's list.
ROOM = keys.Room("script_test")
LOW = f"script_test{keys.PRIORITY_SEPARATOR}9"
QUEUES = ("script_test", LOW)
LEASE_KEYS = lease_keys(ROOM)
LEASES, LEASE_SOURCES, LEASE_RENEWED = LEASE_KEYS
REDELIVERED = ROOM.redelivered


@pytest.fixture
def server(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    held = client.keys(f"{ROOM.prefix}*")
    client.delete(*QUEUES, *held)


def take(server, worker, milliseconds=60_000, sources=QUEUES):
    return RENEW(
        server, LEASE_KEYS, (worker, milliseconds, "\n".join(sources), "new"), clock=ROOM.clock
    )


def fetch(server, worker, queues, count, acks=(), record=None, results=()):
    """FETCH as channel.Channel sends it; ``results``: (key, meta, expiry ms) to store."""
    record = record or "1" * len(queues)
    pairs = [key for queue in queues for key in (queue, keys.held(worker, queue))]
    reply = FETCH(
        server,
        (LEASES, *pairs, *(held for held, _ in acks), *(key for key, _, _ in results)),
        (
            worker,
            count,
            record,
            len(results),
            *(item for _, item in acks),
            *(arg for _, meta, expires in results for arg in (meta, expires)),
        ),
        clock=ROOM.clock,
    )
    return [tuple(reply[i : i + 3]) for i in range(0, len(reply), 3)]


def sweep(server):
    swept, restored, *workers = SWEEP(
        server, (*LEASE_KEYS, REDELIVERED), (20, ROOM.held_prefix), clock=ROOM.clock
    )
    return swept, restored, [worker.decode() for worker in workers]


def publish(redis_url, queue, body):
    """Publish with kombu onto ``queue``, or onto LOW: script_test at priority 9."""
    priority = 9 if queue == LOW else 0
    queue = keys.queue_of(queue)
    with Connection(redis_url) as connection:
        exchange = Exchange(queue, type="direct")
        connection.Producer().publish(
            body,
            exchange=exchange,
            routing_key=queue,
            priority=priority,
            declare=[Queue(queue, exchange, queue)],
        )


def test_a_fetched_message_is_held_under_its_worker(server, redis_url):
    take(server, "w1")
    publish(redis_url, "script_test", {"n": 1})
    [(key, item, recorded)] = fetch(server, "w1", ["script_test"], 5)
    assert (key, recorded) == (b"script_test", 1)
    assert server.lrange(keys.held("w1", "script_test"), 0, -1) == [item]
    assert server.llen("script_test") == 0


def test_acks_remove_exactly_their_message_and_count_bounds_the_fetch(server, redis_url):
    take(server, "w1")
    for n in range(3):
        publish(redis_url, "script_test", {"n": n})
    first = fetch(server, "w1", ["script_test"], 2)
    assert len(first) == 2
    held = keys.held("w1", "script_test")
    second = fetch(server, "w1", ["script_test"], 2, acks=[(held, item) for _, item, _ in first])
    assert len(second) == 1
    assert server.lrange(held, 0, -1) == [second[0][1]]


def test_results_ride_on_the_acks_stored_published_and_a_success_kept(server, redis_url):
    """The results an ack carries (broker.ack_results) are stored with their expiry and
    published in the step that removes the messages; a stored SUCCESS is kept."""
    take(server, "w1")
    for n in range(2):
        publish(redis_url, "script_test", {"n": n})
    first = fetch(server, "w1", ["script_test"], 2)
    held = keys.held("w1", "script_test")
    done, failed = "celery-task-meta-script-test-done", "celery-task-meta-script-test-failed"
    server.set(done, json.dumps({"status": "SUCCESS", "result": "first"}))
    listener = server.pubsub()
    listener.subscribe(failed)
    assert listener.get_message(timeout=1)["type"] == "subscribe"
    meta = json.dumps({"status": "FAILURE", "result": "boom"})
    try:
        fetch(
            server,
            "w1",
            ["script_test"],
            0,
            acks=[(held, item) for _, item, _ in first],
            results=[
                (done, json.dumps({"status": "SUCCESS", "result": "again"}), 0),
                (failed, meta, 60_000),
            ],
        )
        assert server.llen(held) == 0
        assert json.loads(server.get(done))["result"] == "first"
        assert json.loads(server.get(failed)) == json.loads(meta)
        assert 0 < server.pttl(failed) <= 60_000
        assert server.ttl(done) == -1
        assert listener.get_message(timeout=1)["data"] == meta.encode()
    finally:
        listener.close()
        server.delete(done, failed)


def test_queues_are_read_in_the_order_given(server):
    take(server, "w1")
    server.lpush(LOW, "low")
    server.lpush("script_test", "high")
    fetched = fetch(server, "w1", ["script_test", LOW], 1)
    assert [item for _, item, _ in fetched] == [b"high"]


def test_deliveries_of_a_no_ack_queue_are_not_held(server, redis_url):
    """Control replies (Flower's inspect) are consumed without acks: a record of them
    would never be removed and would be handed out again and again."""
    take(server, "w1")
    publish(redis_url, "script_test", {"n": 1})
    publish(redis_url, LOW, {"n": 2})
    fetched = fetch(server, "w1", ["script_test", LOW], 5, record="01")
    assert [(key, recorded) for key, _, recorded in fetched] == [
        (b"script_test", 0),
        (LOW.encode(), 1),
    ]
    assert server.llen(keys.held("w1", "script_test")) == 0
    assert server.llen(keys.held("w1", LOW)) == 1


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
    assert server.llen(keys.held("alive", "script_test")) == 1
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
    renewed = RENEW(server, LEASE_KEYS, ("late", 1000, "script_test", "renew"), clock=ROOM.clock)
    assert renewed == 0


def test_the_lease_thread_renews_while_the_caller_is_busy(server):
    """Renewal does not depend on the caller: a lease of 0.6 s outlives 2 s of sleep."""
    lease = Lease(server, seconds=0.6, sweep_seconds=0.2)
    lease.take(["script_test"])
    time.sleep(2)
    sweep(server)
    assert server.zscore(LEASES, lease.worker_id) is not None
    lease.release()
    assert server.zscore(LEASES, lease.worker_id) is None


def test_the_mark_keeps_empty_arrays_and_objects_as_they_were(server):
    item = (
        '{"body": "W10=", "headers": {"stamps": {}, "a": []}, "properties": {"delivery_info": {}}}'
    )
    take(server, "dead", milliseconds=100, sources=["script_test"])
    server.lpush(keys.held("dead", "script_test"), item)
    time.sleep(0.2)
    sweep(server)
    restored = json.loads(server.rpop("script_test"))
    assert restored["headers"] == {"redelivered": True, "stamps": {}, "a": []}
    assert restored["properties"]["delivery_info"] == {"redelivered": True}


def kombu_restored(envelope: dict) -> dict:
    """What kombu's own restore makes of ``envelope`` (Channel._do_restore_message)."""
    pushed = []

    class Pipe:
        def lpush(self, key, raw):
            pushed.append(raw)

        rpush = lpush

    channel = kombu_redis.Channel.__new__(kombu_redis.Channel)
    channel._lookup = lambda exchange, routing_key: ["q"]
    channel._get_message_priority = lambda message, reverse=False: 0
    channel._q_for_pri = lambda queue, pri: queue
    channel._do_restore_message(json.loads(json.dumps(envelope)), "", "q", Pipe())
    return json.loads(pushed[0])


def test_both_restore_paths_mark_a_message_as_kombu_does(server, redis_url):
    """One marking (lua/mark_redelivered.lua) for a swept lease and for a living worker's
    hand-back: the fields equal kombu's own restore of the same message, and Celery reads
    the one it reads (Request.delivery_info['redelivered'])."""
    publish(redis_url, "script_test", {"n": 1})
    publish(redis_url, "script_test", {"n": 2})
    take(server, "dead", milliseconds=100)
    take(server, "alive")
    [(_, swept_item, _)] = fetch(server, "dead", ["script_test"], 1)
    [(_, kept_item, _)] = fetch(server, "alive", ["script_test"], 1)
    time.sleep(0.2)
    sweep(server)
    held = keys.held("alive", "script_test")
    assert RESTORE(server, (held, "script_test"), (kept_item,)) == 1
    assert RESTORE(server, (held, "script_test"), (kept_item,)) == 0  # no longer held
    originals = {
        json.loads(item)["properties"]["delivery_tag"]: item for item in (swept_item, kept_item)
    }
    restored = server.lrange("script_test", 0, -1)
    assert len(restored) == 2
    for raw in restored:
        original = originals.pop(json.loads(raw)["properties"]["delivery_tag"])
        ours, theirs = json.loads(raw), kombu_restored(json.loads(original))
        assert ours == theirs
        assert ours["headers"]["redelivered"] is True
        assert ours["properties"]["delivery_info"]["redelivered"] is True


def test_scripts_are_called_by_sha_and_reloaded_after_a_flush(server):
    """EVALSHA everywhere; a Redis that lost its script cache gets the script again."""
    server.script_flush()
    take(server, "w1")
    assert server.script_exists(RENEW.sha) == [True]
    calls = {
        name.removeprefix("cmdstat_"): stats["calls"]
        for name, stats in server.info("commandstats").items()
    }
    assert "eval" not in calls  # nothing sent the source to run
    assert calls.get("evalsha", 0) >= 1
