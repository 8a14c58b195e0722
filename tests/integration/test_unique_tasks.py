"""Unique tasks (tasks.unique) through real workers and a real Redis: producers racing on
one call leave one message and all get its id; the key is released when the task
finishes ("finish") or kept for the window ("window"); other arguments are other calls."""

import threading
import time
import uuid

import pytest
import redis

from harness.processes import wait_for
from platform_core.broker import keys
from platform_core.tasks import drills as drill_records
from platform_core.tasks import unique

pytestmark = pytest.mark.django_db(transaction=True)

RACERS = 8
SENDS_EACH = 10


def _race(task, token, seconds):
    """RACERS threads each sending the same call SENDS_EACH times, all at once."""
    ready = threading.Barrier(RACERS)
    ids, errors = [], []

    def send():
        try:
            ready.wait(timeout=10)
            for _ in range(SENDS_EACH):
                ids.append(task.delay(token, seconds).id)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return ids


def _executions(token, expected, timeout=20):
    wait_for(
        lambda: sum(drill_records.executions(token).values()) >= expected,
        timeout,
        f"{expected} execution(s) of {token}",
        interval=0.1,
    )
    return drill_records.executions(token)


def test_racing_producers_leave_one_message_and_all_get_its_id(workers, redis_url):
    from celery_tasks.cert.drills import record_unique

    token = f"unique-{uuid.uuid4()}"
    ids = _race(record_unique, token, 1.0)
    assert len(ids) == RACERS * SENDS_EACH
    assert len(set(ids)) == 1
    [first] = set(ids)
    assert record_unique.AsyncResult(first).get(timeout=20) == 1
    assert _executions(token, 1) == {first: 1}
    # Released when it finished: the same call is a new task now.
    again = record_unique.delay(token, 0)
    assert again.id != first
    assert again.get(timeout=20) == 1
    time.sleep(0.5)  # nothing else arrives
    assert drill_records.executions(token) == {first: 1, again.id: 1}
    key = keys.Room("cert").unique(unique.name_for(record_unique, (token, 0), {}))
    assert redis.Redis.from_url(redis_url).get(key) is None


def test_other_arguments_are_another_call(workers):
    from celery_tasks.cert.drills import record_unique

    token = f"unique-{uuid.uuid4()}"
    one, other = record_unique.delay(token, 0.5), record_unique.delay(token, 0.6)
    assert one.id != other.id
    assert {one.get(timeout=20), other.get(timeout=20)} == {1}


def test_a_window_kept_after_the_task_finished(workers, redis_url):
    from celery_tasks.cert.drills import record_unique_per_window

    token = f"unique-{uuid.uuid4()}"
    first = record_unique_per_window.delay(token, 0)
    assert first.get(timeout=20) == 1
    again = record_unique_per_window.delay(token, 0)
    assert again.id == first.id  # within its 30 s window: not queued again
    time.sleep(0.5)
    assert drill_records.executions(token) == {first.id: 1}
    key = keys.Room("cert").unique(unique.name_for(record_unique_per_window, (token, 0), {}))
    ttl = redis.Redis.from_url(redis_url).pttl(key)
    assert 25_000 < ttl <= 30_000
