"""Cancellation (tasks.cancellation) through real workers and a real Redis: a delayed
task is taken out of Redis, a running one stopped through the soft time limit and not
run again, a message arriving after its cancellation is dropped, an unknown id is one
clear line."""

import subprocess
import time
import uuid

import pytest
import redis
from celery import states

from harness.processes import manage, wait_for
from platform_core.broker import keys
from platform_core.errors import UnknownTask
from platform_core.tasks import cancellation
from platform_core.tasks import drills as drill_records

pytestmark = pytest.mark.django_db(transaction=True)


def _cancel_when_found(task_id, timeout=10):
    """Cancel as soon as the message is somewhere the cancellation can find it."""

    def attempt():
        try:
            return cancellation.cancel(task_id)
        except UnknownTask:
            return None

    return wait_for(attempt, timeout, f"{task_id} to be where a cancellation finds it")


def test_a_delayed_task_is_removed_and_revoked(workers, redis_url):
    from celery_tasks.cert.drills import record

    token = f"cancel-{uuid.uuid4()}"
    sent = record.apply_async((token, 0), countdown=60)
    outcome = _cancel_when_found(sent.id)
    assert outcome.removed == 1
    assert outcome.queue == "cert"
    assert sent.state == states.REVOKED
    client = redis.Redis.from_url(redis_url)
    assert client.zscore(keys.Room("cert").cancelled, sent.id) is not None
    assert all(sent.id.encode() not in item for item in client.zrange(keys.delayed("cert"), 0, -1))


def test_a_running_task_is_stopped_and_not_run_again(workers, redis_url):
    from celery_tasks.cert.drills import record

    token = f"cancel-{uuid.uuid4()}"
    sent = record.delay(token, 30)
    wait_for(lambda: drill_records.starts(token), 20, "the task to start")
    outcome = cancellation.cancel(sent.id)
    assert outcome.removed == 0
    assert outcome.held_by
    stopped_at = time.monotonic()
    wait_for(lambda: sent.state == states.REVOKED, 10, "the task to be stopped")
    stopped_in = time.monotonic() - stopped_at
    assert stopped_in < 5
    # Not handed out again (a lease sweep, a redelivery), and it never completed.
    time.sleep(4)
    assert drill_records.executions(token) == {}
    assert len(drill_records.starts(token)[sent.id]) == 1
    assert sent.state == states.REVOKED
    client = redis.Redis.from_url(redis_url)
    held = [key for key in client.scan_iter(f"{keys.Room('cert').held_prefix}*")]
    assert all(sent.id.encode() not in item for key in held for item in client.lrange(key, 0, -1))


def test_a_message_arriving_after_its_cancellation_is_dropped(workers, redis_url):
    """What a lease sweep hands back, or a producer sends late, after a cancellation:
    the worker that takes it drops it (the record is kept in Redis, not in memory)."""
    from celery_tasks.cert.drills import record
    from platform_core.broker import cancellations, clients

    token, task_id = f"cancel-{uuid.uuid4()}", str(uuid.uuid4())
    cancellations.record(clients.shared(), "cert", task_id, 3600)
    time.sleep(2 * cancellations.HEAR_SECONDS + 0.5)  # every cert worker has heard it
    sent = record.apply_async((token, 0), task_id=task_id)
    wait_for(lambda: sent.state == states.REVOKED, 10, "the late message to be dropped")
    time.sleep(1)
    assert drill_records.executions(token) == {}


def test_an_unknown_id_is_one_clear_line_and_records_nothing(workers, redis_url, platform_env):
    task_id = str(uuid.uuid4())
    with pytest.raises(UnknownTask, match=f"no task {task_id} is waiting, delayed or held"):
        cancellation.cancel(task_id)
    client = redis.Redis.from_url(redis_url)
    assert client.zscore(keys.Room("cert").cancelled, task_id) is None
    done = subprocess.run(
        manage("cancel", task_id, "not a task id", "--queue", "pqs"),
        env={**platform_env, "DJANGO_SETTINGS_MODULE": "sites.pqs.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"CommandError: no task {task_id} is waiting, delayed or held by a worker in pqs; "
        "nothing was cancelled",
        "'not a task id' is not a task id (e.g. the id .delay() returned)",
    ]
