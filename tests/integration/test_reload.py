"""--reload restarts a worker when code changes: a new task module is picked up live."""

import subprocess
import sys
import textwrap

import pytest

from harness.processes import ROOT, Process, manage, wait_for

MODULE = ROOT / "celery_tasks" / "cert" / "reload_probe_for_tests.py"
SOURCE = textwrap.dedent(
    '''
    """Written and removed by tests/integration/test_reload.py."""

    from sites.cert.celery_app import cert_app


    @cert_app.task
    def answer():
        return 42
    '''
)
CLIENT = textwrap.dedent(
    """
    import sys
    from celery import Celery

    app = Celery("outsider", broker=sys.argv[1], backend=sys.argv[1])
    name = "celery_tasks.cert.reload_probe_for_tests.answer"
    print(app.send_task(name, queue="cert").get(timeout=20))
    """
)


@pytest.fixture
def reloading_worker(platform_env, log_dir, redis_url):
    # A Redis database of its own, so the session's cert worker never sees these tasks.
    url = redis_url.rsplit("/", 1)[0] + "/7"
    env = {**platform_env, "REDIS_URL": url}
    worker = Process("reload-worker", manage("runcertworker", "-c", "1", "--reload"), env, log_dir)
    wait_for(lambda: worker.log().count(" ready.") >= 1, 60, "the worker to start")
    yield worker, url
    worker.stop(timeout=60)
    MODULE.unlink(missing_ok=True)


def test_new_task_module_is_discovered_after_a_reload(reloading_worker):
    worker, url = reloading_worker
    try:
        MODULE.write_text(SOURCE)
        wait_for(lambda: worker.log().count(" ready.") >= 2, 60, "the worker to restart")
        assert "celery_tasks.cert.reload_probe_for_tests.answer" in worker.log()
        result = subprocess.run(
            [sys.executable, "-I", "-c", CLIENT, url],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
        )
        assert result.stdout.strip() == "42", result.stderr
    finally:
        MODULE.unlink(missing_ok=True)
