"""Each site's tasks run on that site's worker, under that site's settings."""

import pytest

from platform_core.config.queues import QUEUES

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("queue", QUEUES)
def test_probe_runs_on_its_own_worker_under_its_settings(workers, queue):
    module = __import__(f"celery_tasks.{queue}.probe", fromlist=["whoami"])
    info = module.whoami.delay().get(timeout=20)
    site = "cert" if queue == "long_running" else queue  # LONG_RUNNING_SITE defaults to cert
    assert info["queue"] == queue
    assert info["worker"].startswith(f"{queue}@")
    assert info["site"] == site
    assert info["settings_module"] == f"sites.{site}.settings"


@pytest.mark.parametrize(
    ("sender", "target"),
    [("cert", "pqs"), ("pqs", "green_door"), ("api", "long_running"), ("long_running", "api")],
)
def test_send_task_by_name_lands_on_the_other_site(workers, sender, target):
    from platform_core.tasks.registry import platform_apps

    app = platform_apps()[sender]
    info = app.send_task(f"celery_tasks.{target}.probe.whoami").get(timeout=20)
    assert info["queue"] == target
    assert info["worker"].startswith(f"{target}@")


def test_worker_commands_become_the_worker_so_signals_reach_it(workers, client_app):
    # The PID we started as `manage.py run…worker` is the Celery worker's main process
    # (started in-process, or exec'd): systemd's SIGTERM goes straight to Celery.
    stats = client_app.control.inspect(timeout=2).stats() or {}
    pids = {name.split("@")[0]: info["pid"] for name, info in stats.items()}
    assert pids == {queue: process.popen.pid for queue, process in workers.items()}
