"""Bad messages get one clear log line and are counted; the worker goes on consuming."""

import pytest
import redis

from harness.processes import wait_for
from platform_core.broker import keys
from tests.integration import raw_messages

PROBE = "celery_tasks.{queue}.probe.whoami"

CASES = {
    # name: (body, content type, task, what the log line says, counter reason)
    "invalid-json": (
        raw_messages.invalid_json_body(),
        "application/json",
        PROBE,
        "Rejected message (undecodable): DecodeError",
        "undecodable",
    ),
    "pickle": (
        raw_messages.pickle_body(),
        "application/x-python-serialize",
        PROBE,
        "Refusing to deserialize untrusted content of type pickle",
        "invalid",
    ),
    "unknown-task": (
        raw_messages.json_body(),
        "application/json",
        "celery_tasks.{queue}.nope.missing",
        "Rejected message (unknown-task): no task 'celery_tasks.{queue}.nope.missing'",
        "unknown-task",
    ),
    "wrong-arguments": (
        raw_messages.json_body(args=(1, 2, 3)),
        "application/json",
        PROBE,
        "wrong arguments args=(1, 2, 3)",
        "wrong-arguments",
    ),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("queue", ["cert", "long_running"])
def test_bad_message_is_rejected_and_the_next_good_task_runs(workers, redis_url, queue, case):
    body, content_type, task, expected_log, reason = CASES[case]
    counter = redis.Redis.from_url(redis_url)
    before = int(counter.hget(keys.Room(queue).rejected, reason) or 0)

    bad_id = raw_messages.push(redis_url, queue, body, content_type, task.format(queue=queue))
    good_id = raw_messages.push(
        redis_url, queue, raw_messages.json_body(), "application/json", PROBE.format(queue=queue)
    )

    from platform_core.tasks.registry import platform_apps

    good = platform_apps()[queue].AsyncResult(good_id).get(timeout=20)
    assert good["queue"] == queue

    worker = workers[queue]
    line = wait_for(
        lambda: next(
            (ln for ln in worker.log().splitlines() if bad_id in ln and "Rejected" in ln), None
        ),
        10,
        "the rejection log line",
    )
    assert expected_log.format(queue=queue) in line
    assert int(counter.hget(keys.Room(queue).rejected, reason) or 0) == before + 1
    assert worker.alive()
    # Celery's multi-line dumps and tracebacks are not printed for these.
    assert "Traceback" not in worker.log()
