"""Delays of any length (platform_core.broker.delays): an hour's countdown, tomorrow's ETA
and a retry an hour later are parked by the worker they reach in the queue's delayed set
with their due times (no worker holds them meanwhile); a delay beyond the sanity limit
is refused, naming the limit, and nothing is sent."""

from datetime import UTC, datetime, timedelta

import pytest
import redis

from harness.processes import wait_for
from platform_core.broker import keys
from platform_core.errors import DelayTooLong

HOUR_MS = 3_600_000


@pytest.fixture
def server(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.delete(keys.delayed("cert"))
    yield client
    client.delete(keys.delayed("cert"))


def due_times(server) -> dict[str, float]:
    """task id -> due time (ms of Redis' clock) of every message in cert's delayed set."""
    import json

    return {
        json.loads(item)["headers"]["id"]: due
        for item, due in server.zrange(keys.delayed("cert"), 0, -1, withscores=True)
    }


def redis_now_ms(server) -> int:
    seconds, micros = server.time()
    return seconds * 1000 + micros // 1000


def test_an_hour_and_tomorrow_wait_in_the_delayed_set(server, client_app, workers):
    from celery_tasks.cert.drills import record

    tomorrow = datetime.now(UTC) + timedelta(days=1)
    now = redis_now_ms(server)
    in_an_hour = record.apply_async(("delay-test", 0), countdown=3600)
    at_tomorrow = record.apply_async(("delay-test", 0), eta=tomorrow)
    wait_for(lambda: len(due_times(server)) == 2, 30, "the cert worker to park both")
    due = due_times(server)
    assert abs(due[in_an_hour.id] - (now + HOUR_MS)) < 5_000
    assert abs(due[at_tomorrow.id] - (now + 24 * HOUR_MS)) < 5_000
    held = b"".join(
        item
        for key in server.keys(f"{keys.Room('cert').held_prefix}*")
        for item in server.lrange(key, 0, -1)
    )
    assert in_an_hour.id.encode() not in held  # no worker holds them meanwhile
    assert at_tomorrow.id.encode() not in held


def test_a_delay_beyond_the_limit_is_refused_and_nothing_is_sent(server, client_app, settings):
    from celery_tasks.cert.drills import record

    days = settings.PLATFORM_MAX_DELAY_SECONDS // 86400
    with pytest.raises(DelayTooLong, match=rf"limit of .* \({days} days, PLATFORM_MAX_DELAY"):
        record.apply_async(("delay-test", 0), countdown=(days + 1) * 86400)
    with pytest.raises(DelayTooLong, match="Nothing was sent"):
        record.apply_async(("delay-test", 0), eta=datetime.now(UTC) + timedelta(days=days + 1))
    assert server.zcard(keys.delayed("cert")) == 0
    assert server.llen("cert") == 0


def test_a_retry_an_hour_later_waits_in_the_delayed_set(server, client_app, workers):
    from celery_tasks.cert.drills import retry_once

    result = retry_once.apply_async(("delay-test", 3600))
    wait_for(lambda: result.id in due_times(server), 30, "the retry to be parked")
    assert abs(due_times(server)[result.id] - (redis_now_ms(server) + HOUR_MS)) < 10_000
    assert result.state == "RETRY"
