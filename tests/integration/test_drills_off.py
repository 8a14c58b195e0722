"""A worker started as on a production host (DJANGO_ENV=production, PLATFORM_DRILLS not
set) has no drill: it refuses one with a line naming the setting, runs nothing of it,
and goes on serving its queue, without a log line per task; `manage drill` there says
how to enable drills.

The worker has a Redis database of its own, so the session's workers (database 0)
neither take these tasks nor answer these pings.
"""

import subprocess
import uuid

import pytest
import redis
from celery import Celery

from harness.processes import ROOT, Process, manage, wait_for
from platform_core.broker import keys
from platform_core.config.drills import DRILLS_OFF, is_drill

RECORD = "celery_tasks.cert.drills.record"


@pytest.fixture
def production_env(platform_env, redis_url):
    env = {
        **platform_env,
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "test-only-not-a-secret",
        "REDIS_URL": f"{redis_url.rsplit('/', 1)[0]}/7",
    }
    del env["PLATFORM_DRILLS"]  # the test session turns drills on (tests/testenv.py)
    return env


@pytest.fixture
def client(production_env):
    app = Celery("drills-off-test", broker=production_env["REDIS_URL"])
    app.conf.result_backend = production_env["REDIS_URL"]
    app.conf.broker_transport = "kombu.transport.redis:Transport"  # a plain client
    yield app
    app.close()


def test_a_production_worker_refuses_a_drill_and_runs_the_next_task(
    production_env, client, log_dir
):
    # As systemd's celery-worker@cert unit starts it.
    argv = manage("runworker", "cert", "-c", "1", "-n", "nodrills@%h")
    worker = Process("worker-nodrills", argv, production_env, log_dir)
    broker = redis.Redis.from_url(production_env["REDIS_URL"])
    try:
        wait_for(lambda: " ready." in worker.log(), 60, "the worker to start")
        replies = client.control.inspect(timeout=2).registered() or {}
        names = {
            name
            for node, found in replies.items()
            if node.startswith("nodrills@")
            for name in found
        }
        assert "celery_tasks.cert.probe.whoami" in names
        assert not [name for name in names if is_drill(name)]

        token = uuid.uuid4().hex
        refused = client.send_task(RECORD, args=[token, 0], queue="cert")
        line = (
            f"Rejected message (drills-off): {RECORD} is a fault drill and {DRILLS_OFF} "
            f"[queue=cert task={RECORD} id={refused.id} "
        )
        wait_for(lambda: line in worker.log(), 30, "the drill to be refused")
        assert worker.log().count(refused.id) == 1  # one line, nothing else about it
        assert "Traceback" not in worker.log()
        with pytest.raises(Exception, match=RECORD) as failed:
            refused.get(timeout=10)
        assert type(failed.value).__name__ == "NotRegistered"
        assert broker.hget(keys.Room("cert").rejected, "drills-off") == b"1"

        whoami = client.send_task("celery_tasks.cert.probe.whoami", queue="cert")
        answer = whoami.get(timeout=30)
        assert answer["worker"].startswith("nodrills@")
        # Celery's per-task INFO lines are off on a production host (PLATFORM_TASK_LOG_LINES).
        assert whoami.id not in worker.log()
        # Not run: no execution and no start recorded under the token.
        assert not broker.exists(keys.drill(token))
        assert not broker.exists(keys.drill(token, "starts"))
        assert worker.alive()
    finally:
        worker.stop()
        broker.close()


def test_manage_drill_on_a_production_host_says_how_to_enable_drills(production_env):
    done = subprocess.run(
        manage("drill", "send", "--token", uuid.uuid4().hex),
        cwd=ROOT,
        env=production_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"CommandError: drill send: {DRILLS_OFF}\n"
