"""queue_stats.read_snapshot on the test's real redis-server, with queues of its own:
ages from send stamps, due times and first sightings; delayed sets; counters; the beat;
and the round trips one snapshot costs, counted on the connection itself."""

import json
import time

import pytest
import redis

from platform_core.broker import keys
from platform_core.broker.scripts import STAMP_TIME
from platform_core.broker.sent_stamp import SENT_HEADER
from platform_core.broker.transport import priority_keys
from platform_core.observe import queue_stats
from platform_core.observe.queue_stats import read_snapshot

QUEUES = ("stats_a", "stats_b")


class CountingConnection(redis.Connection):
    sends = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sends += 1
        super().send_packed_command(command, check_health)


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    lists = [key for queue in QUEUES for key in priority_keys(queue).values()]
    rooms = [key for queue in QUEUES for key in client.keys(f"{keys.Room(queue).prefix}*")]
    client.delete(*lists, *rooms)


def redis_now_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def envelope(tag: str, **headers) -> str:
    return json.dumps({"body": "", "properties": {"delivery_tag": tag}, "headers": headers})


def test_the_oldest_age_comes_from_the_send_stamp_at_the_head(client):
    now = redis_now_ms(client)
    # kombu pushes on the left and consumers pop from the right: the head is the oldest.
    client.lpush("stats_a", envelope("t1", **{SENT_HEADER: now - 7000}))
    client.lpush("stats_a", envelope("t2", **{SENT_HEADER: now - 1000}))
    high = priority_keys("stats_a")[9]
    client.lpush(high, envelope("t3", **{SENT_HEADER: now - 9000}))
    stats = read_snapshot(client, QUEUES).queues["stats_a"]
    assert stats.waiting == {0: 2, 3: 0, 6: 0, 9: 1}
    assert stats.depth == 3
    assert 9.0 <= stats.oldest_age < 10.0
    assert stats.oldest_stamped


def test_a_message_that_was_delayed_is_aged_from_its_due_time(client):
    now = redis_now_ms(client)
    due = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now / 1000 - 2)) + "+00:00"
    client.lpush("stats_a", envelope("t1", eta=due, **{SENT_HEADER: now - 3_600_000}))
    stats = read_snapshot(client, QUEUES).queues["stats_a"]
    assert 2.0 <= stats.oldest_age < 4.0


def test_a_plain_clients_message_is_aged_from_when_it_was_first_seen(client):
    client.lpush("stats_b", envelope("plain-1"))
    first = read_snapshot(client, QUEUES).queues["stats_b"]
    assert first.oldest_age < 0.5
    assert not first.oldest_stamped
    time.sleep(1.2)
    assert read_snapshot(client, QUEUES).queues["stats_b"].oldest_age >= 1.2
    # Another message at the head starts again from its own first sighting.
    client.rpop("stats_b")
    client.lpush("stats_b", envelope("plain-2"))
    assert read_snapshot(client, QUEUES).queues["stats_b"].oldest_age < 0.5
    # An empty queue forgets its record (kept in the reader's memory: it writes nothing).
    client.rpop("stats_b")
    read_snapshot(client, QUEUES)
    assert "stats_b" not in queue_stats._first_seen


def test_delayed_sets_and_the_next_due_time(client):
    now = redis_now_ms(client)
    client.zadd(keys.delayed("stats_a"), {"x": now + 60_000, "y": now + 3_600_000})
    client.zadd(keys.delayed(priority_keys("stats_a")[3]), {"z": now + 30_000})
    stats = read_snapshot(client, QUEUES).queues["stats_a"]
    assert stats.delayed == 3
    assert 29.0 < stats.next_due_in <= 30.0
    assert read_snapshot(client, QUEUES).queues["stats_b"].next_due_in is None


def test_counters_land_on_their_queue(client):
    client.hincrby(keys.Room("stats_a").rejected, "bad-body", 2)
    client.hincrby(keys.Room("stats_b").redelivered, priority_keys("stats_b")[3], 4)
    client.hincrby(keys.Room("stats_b").redelivered, "stats_b", 1)
    client.zadd(keys.Room("stats_a").cancelled, {"task-1": 1, "task-2": 2})
    snapshot = read_snapshot(client, QUEUES)
    assert snapshot.queues["stats_a"].rejected == {"bad-body": 2}
    assert snapshot.queues["stats_b"].rejected == {}
    assert snapshot.queues["stats_b"].redelivered == 5
    assert (snapshot.queues["stats_a"].cancelled, snapshot.queues["stats_b"].cancelled) == (2, 0)


def test_the_beat_leader_and_its_last_tick(client):
    client.set(keys.BEAT_LEADER, "beat-host:42", px=5000)
    STAMP_TIME(client, (keys.BEAT_TICK,), clock=keys.BEAT_CLOCK)
    time.sleep(0.3)
    beat = read_snapshot(client, QUEUES).beat
    assert beat.leader == "beat-host:42"
    assert 0.3 <= beat.tick_age < 2.0
    client.delete(keys.BEAT_LEADER)
    beat = read_snapshot(client, QUEUES).beat
    assert beat.leader is None
    assert beat.tick_age is None


def test_a_snapshot_costs_a_few_round_trips_whatever_the_queues_hold(redis_url, client):
    """Counted on the connection (one send per command or pipeline), not self-reported."""
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    counting = redis.Redis(connection_pool=pool)
    counting.ping()  # the connection's own handshake is not the snapshot's
    client.lpush("stats_a", *[envelope(f"n{n}") for n in range(5000)])  # plain: first seen
    CountingConnection.sends = 0
    snapshot = read_snapshot(counting, QUEUES)
    assert snapshot.queues["stats_a"].depth == 5000
    # The reads only; no worker takes from these queues, so there are no held lists to
    # read (the session's workers hold leases in the platform's queues' rooms: their
    # lists are not this snapshot's business).
    assert CountingConnection.sends == snapshot.round_trips == 1
    CountingConnection.sends = 0
    snapshot = read_snapshot(counting)  # the platform's five queues and its workers
    assert CountingConnection.sends == snapshot.round_trips <= 10
