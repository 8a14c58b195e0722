"""The delayed-set scripts (platform_core/broker/lua), run on the test's real
redis-server: a parked message waits in its queue's delayed set scored by Redis' clock;
a due one is moved to the front of its queue exactly once, however many promoters run;
the platform's producer puts a far ETA on its queue like any message."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis

from platform_core.broker import keys, transport
from platform_core.broker.delays import HORIZON_SECONDS, Promoter
from platform_core.broker.scripts import PARK, PROMOTE

QUEUE = "delay_test"
OTHER = "delay_test_other"
CLOCK = keys.room(QUEUE).clock


@pytest.fixture
def server(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.delete(QUEUE, OTHER, keys.delayed(QUEUE), keys.delayed(OTHER), "delay_test_held")


def redis_now_ms(server) -> int:
    seconds, micros = server.time()
    return seconds * 1000 + micros // 1000


def park(server, queue, item, delay_ms):
    return PARK(server, (keys.delayed(queue),), (delay_ms, item), clock=keys.room(queue).clock)


def promote(server, *queues, limit=500):
    pairs = [key for queue in queues for key in (keys.delayed(queue), queue)]
    moved, next_ms = PROMOTE(server, pairs, (limit,), clock=keys.room(queues[0]).clock)
    return moved, next_ms


def test_a_parked_message_is_scored_by_redis_clock(server):
    before = redis_now_ms(server)
    due = park(server, QUEUE, b"m1", 3_600_000)
    after = redis_now_ms(server)
    assert before + 3_600_000 <= due <= after + 3_600_000
    assert server.zscore(keys.delayed(QUEUE), b"m1") == due
    assert server.llen(QUEUE) == 0


def test_only_due_messages_move_earliest_first_to_the_front(server):
    server.lpush(QUEUE, b"queued")  # a backlog: due messages go ahead of it
    park(server, QUEUE, b"late", 60_000)
    # Overdue by different amounts, scored directly: PARK clamps a negative delay to "now",
    # so two parks would be ordered by the milliseconds between them (a flaky order).
    now = redis_now_ms(server)
    server.zadd(keys.delayed(QUEUE), {b"second": now - 2000, b"first": now - 5000})
    moved, next_ms = promote(server, QUEUE)
    assert moved == 2
    assert 55_000 < next_ms <= 60_000
    # Consumers take from the right: first, then second, then the backlog.
    assert [server.rpop(QUEUE) for _ in range(3)] == [b"first", b"second", b"queued"]
    assert server.zrange(keys.delayed(QUEUE), 0, -1) == [b"late"]


def test_nothing_waiting_says_so(server):
    assert promote(server, QUEUE, OTHER) == (0, -1)


def test_the_next_due_time_spans_every_watched_queue(server):
    park(server, QUEUE, b"a", 50_000)
    park(server, OTHER, b"b", 10_000)
    moved, next_ms = promote(server, QUEUE, OTHER)
    assert moved == 0
    assert 5_000 < next_ms <= 10_000


def test_many_promoters_move_each_message_exactly_once(server, redis_url):
    items = [f"m{i}".encode() for i in range(2000)]
    PARK.load(server)  # a pipeline runs EVALSHA as given: no NOSCRIPT retry inside it
    for start in range(0, len(items), 500):
        with server.pipeline() as pipe:
            for item in items[start : start + 500]:
                pipe.execute_command(
                    *PARK.command((keys.delayed(QUEUE),), (300, item), clock=CLOCK)
                )
            pipe.execute()
    stop = threading.Event()

    def promoter():
        client = redis.Redis.from_url(redis_url)
        while not stop.is_set():
            promote(client, QUEUE, limit=7)

    threads = [threading.Thread(target=promoter) for _ in range(6)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while server.llen(QUEUE) < len(items) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # promoters still running: nothing more may appear
    stop.set()
    for thread in threads:
        thread.join()
    assert sorted(server.lrange(QUEUE, 0, -1)) == sorted(items)
    assert server.zcard(keys.delayed(QUEUE)) == 0


def test_a_held_message_is_parked_only_if_still_held(server):
    server.lpush("delay_test_held", b"held")
    held = (keys.delayed(QUEUE), "delay_test_held")
    assert PARK(server, held, (60_000, b"held"), clock=CLOCK) > 0
    assert server.llen("delay_test_held") == 0
    assert server.zcard(keys.delayed(QUEUE)) == 1
    # Swept meanwhile (someone else has it now): not parked a second time.
    assert PARK(server, held, (60_000, b"gone"), clock=CLOCK) == -1
    assert server.zcard(keys.delayed(QUEUE)) == 1


def test_the_promoter_thread_moves_a_message_within_its_due_time(server, redis_url):
    promoter = Promoter(redis.Redis.from_url(redis_url), "test promoter")
    promoter.watch([QUEUE])
    try:
        time.sleep(0.2)  # it looked once and found nothing
        park(server, QUEUE, b"soon", int(HORIZON_SECONDS * 1000))
        due = time.monotonic() + HORIZON_SECONDS
        reply = server.brpop(QUEUE, timeout=HORIZON_SECONDS + 5)
        late = time.monotonic() - due
    finally:
        promoter.stop()
    assert reply == (QUEUE.encode(), b"soon")
    assert -0.05 < late < 0.5


@pytest.mark.parametrize("batch", [False, True])
def test_the_platform_producer_puts_even_a_far_eta_on_its_queue(server, redis_url, batch):
    """A producer only pushes onto queues (its Redis user may do nothing else with another
    site's queue, broker.acl): a far ETA is parked by the worker it reaches first."""
    from contextlib import nullcontext

    from kombu import Connection

    transport.install()
    now = datetime.now(UTC)
    with Connection(redis_url) as connection:
        producer = connection.Producer()
        with producer.batch() if batch else nullcontext():
            for name, eta in (("far", now + timedelta(hours=1)), ("near", now)):
                producer.publish(
                    {"n": name}, routing_key=QUEUE, headers={"eta": eta.isoformat(), "id": name}
                )
    assert server.zcard(keys.delayed(QUEUE)) == 0
    assert sorted(b'"far"' in item for item in server.lrange(QUEUE, 0, -1)) == [False, True]


def test_purging_a_queue_empties_its_delayed_set_too(server, redis_url):
    from kombu import Connection

    transport.install()
    server.lpush(QUEUE, b"queued")
    park(server, QUEUE, b"parked", 60_000)
    with Connection(redis_url) as connection:
        assert connection.default_channel.queue_purge(QUEUE) == 2
    assert server.llen(QUEUE) == 0
    assert server.zcard(keys.delayed(QUEUE)) == 0
