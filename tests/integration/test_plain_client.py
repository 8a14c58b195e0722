"""A client that imports nothing from this project can use every site by task name."""

import subprocess
import sys
import textwrap

import pytest

from platform_core.config.queues import QUEUES

CLIENT = textwrap.dedent(
    """
    import json, sys
    from celery import Celery

    url, queue = sys.argv[1], sys.argv[2]
    app = Celery("outsider", broker=url, backend=url)
    app.conf.task_serializer = "json"
    result = app.send_task(f"celery_tasks.{queue}.probe.whoami", queue=queue)
    print(json.dumps(result.get(timeout=20)))
    """
)


@pytest.mark.parametrize("queue", QUEUES)
def test_plain_celery_client_sends_by_name_and_reads_the_result(workers, redis_url, queue):
    # A separate interpreter with an empty path: nothing of the project is importable.
    result = subprocess.run(
        [sys.executable, "-I", "-c", CLIENT, redis_url, queue],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert f'"queue": "{queue}"' in result.stdout
    assert f'"worker": "{queue}@' in result.stdout
