"""The rate-limit scripts on a real Redis (lua/admit.lua, lua/gate.lua): a delivery runs
at once while its limit has a free slot and nothing waits; otherwise it waits at the
gate, and is released in order, each at its own slot, marked, into the delayed set."""

import itertools
import json

import pytest
import redis

from platform_core.broker import keys, rate_limits
from platform_core.config.rates import Rate

QUEUE = "ratelimit_test"
NAME = "celery_tasks.cert.drills.record_limited"


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.delete(*client.keys(f"{keys.Room(QUEUE).prefix}*"))


def item(n: int) -> bytes:
    return json.dumps({"body": "", "headers": {"id": f"t{n}", "task": NAME}}).encode()


def test_early_deliveries_wait_at_the_gate_and_leave_it_at_their_slots(client):
    limits = rate_limits.Limits(QUEUE)
    rate = Rate.parse("10/s")  # a slot every 100 ms
    held = keys.Room(QUEUE).held("w1", QUEUE)
    client.lpush(held, *(item(n) for n in range(5)))
    verdicts = [rate_limits.admit(client, limits, NAME, rate, held, item(n)) for n in range(5)]
    assert verdicts == [1, 0, 0, 0, 0]  # the first takes the free slot
    assert client.lrange(held, 0, -1) == [item(0)]  # the others left the held list
    room = keys.Room(QUEUE)
    assert client.lrange(room.gate(NAME), 0, -1) == [item(n) for n in range(1, 5)]
    assert client.hgetall(room.gated) == {NAME.encode(): b"4"}  # what the metrics show
    rate_limits.DEFAULTS[QUEUE] = {NAME: rate}
    try:
        rate_limits.release(client, limits, keys.delayed(QUEUE))
    finally:
        del rate_limits.DEFAULTS[QUEUE]
    released = client.zrange(keys.delayed(QUEUE), 0, -1, withscores=True)
    assert [json.loads(member)["headers"]["id"] for member, _ in released] == [
        "t1",
        "t2",
        "t3",
        "t4",
    ]
    slots = [score for _, score in released]
    assert [round(b - a) for a, b in itertools.pairwise(slots)] == [100, 100, 100]
    for member, score in released:
        assert rate_limits.slot_of(json.loads(member)) == int(score)
    assert client.llen(room.gate(NAME)) == 0
    assert client.hgetall(room.gated) == {}


def test_a_delivery_no_longer_held_is_not_gated(client):
    limits = rate_limits.Limits(QUEUE)
    rate = Rate.parse("1/h")
    held = keys.Room(QUEUE).held("w1", QUEUE)
    client.lpush(held, item(0))
    assert rate_limits.admit(client, limits, NAME, rate, held, item(0)) == 1
    assert rate_limits.admit(client, limits, NAME, rate, held, item(9)) == -1  # swept
    assert client.llen(keys.Room(QUEUE).gate(NAME)) == 0


def test_a_runtime_limit_wins_over_the_code_default(client):
    limits = rate_limits.Limits(QUEUE)
    rate_limits.DEFAULTS[QUEUE] = {NAME: Rate.parse("20/s")}
    try:
        client.hset(keys.Room(QUEUE).rates, NAME, "5/s")
        client.hset(keys.Room(QUEUE).rates, rate_limits.ALL_TASKS, "100/m")
        limits.reload(client, force=True)
        assert limits.for_task(NAME) == (NAME, Rate.parse("5/s"))
        assert limits.for_task("celery_tasks.x.other") == (
            rate_limits.ALL_TASKS,
            Rate.parse("100/m"),
        )
    finally:
        del rate_limits.DEFAULTS[QUEUE]
