"""A periodic job's due time is enqueued once, whichever beat sends it (tasks.beat, on the
test's real redis-server through the platform's producer): the same occurrence twice is
one message, an older one none, the next one one more; and the occurrence is the
schedule's due point after the entry's last run, the same on every beat."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery.schedules import crontab, schedule

from platform_core.broker import keys
from platform_core.broker.channel import ONCE_HEADER
from platform_core.tasks.beat import ONCE_PREFIX, occurrence_ms


@pytest.fixture
def queue(redis_url):
    name = f"once-test-{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(redis_url)
    client.delete(name)
    client.hdel(keys.ONCE, f"{ONCE_PREFIX}{name}")


def send(app, queue, occurrence):
    headers = {ONCE_HEADER: f"{ONCE_PREFIX}{queue}\n{occurrence}"}
    app.send_task("celery_tasks.cert.drills.record", args=["once", 0], queue=queue, headers=headers)


def test_an_occurrence_is_enqueued_once_and_an_older_one_not_at_all(client_app, redis_url, queue):
    client = redis.Redis.from_url(redis_url)
    send(client_app, queue, 1_000)
    send(client_app, queue, 1_000)  # the other beat, same due time
    assert client.llen(queue) == 1
    send(client_app, queue, 900)  # a beat that read an older last run
    assert client.llen(queue) == 1
    send(client_app, queue, 1_100)  # the next due time
    assert client.llen(queue) == 2
    assert int(client.hget(keys.ONCE, f"{ONCE_PREFIX}{queue}")) == 1_100


class Entry:
    def __init__(self, every, last_run_at):
        self.schedule, self.last_run_at = every, last_run_at


def test_the_occurrence_is_the_due_point_after_the_last_run():
    last = datetime(2026, 11, 29, 10, 0, 7, tzinfo=UTC)
    every_minute = Entry(schedule(timedelta(seconds=60)), last)
    assert occurrence_ms(every_minute) == int((last + timedelta(seconds=60)).timestamp() * 1000)
    at_the_hour = Entry(crontab(minute=0), last)
    due = datetime(2026, 11, 29, 11, 0, tzinfo=UTC)
    assert occurrence_ms(at_the_hour) == int(due.timestamp() * 1000)
    assert occurrence_ms(Entry(schedule(60), None)) is None
