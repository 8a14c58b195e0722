"""Flower lists all five workers, behind basic auth whose secret is not in any argv."""

import json
from pathlib import Path

from harness.processes import wait_for
from platform_core.config.queues import QUEUES
from tests.integration.http import get, status


def test_flower_refuses_without_credentials(flower):
    port = flower.port
    assert status(port, "/api/workers") == 401
    assert status(port, "/api/workers", auth="admin:wrong-password") == 401


def test_flower_lists_all_five_workers_with_credentials(flower):
    port = flower.port

    def names():
        with get(port, "/api/workers?refresh=1", auth=flower.credentials) as response:
            return {name.split("@")[0] for name in json.load(response)}

    seen = wait_for(
        lambda: (n := names()) >= set(QUEUES) and n,
        30,
        "Flower to see five workers",
    )
    assert seen == set(QUEUES)


def test_flower_sees_the_tasks_of_every_queue(flower, client_app):
    port = flower.port
    sent = {
        queue: client_app.send_task(f"celery_tasks.{queue}.probe.whoami").id for queue in QUEUES
    }

    def states():
        with get(port, "/api/tasks", auth=flower.credentials) as response:
            tasks = json.load(response)
        return {queue: (tasks.get(task_id) or {}).get("state") for queue, task_id in sent.items()}

    def all_succeeded():
        seen = states()
        return seen if set(seen.values()) == {"SUCCESS"} else None

    seen = wait_for(all_succeeded, 30, "Flower to see every probe succeed (from task events)")
    assert set(seen) == set(sent)


def test_flower_shows_a_cancelled_task_as_revoked(flower, client_app):
    """Cancellation (tasks.cancellation) sends Celery's task-revoked event: both a task
    removed before it ran and one a worker stopped show as REVOKED."""
    from platform_core.errors import UnknownTask
    from platform_core.tasks.cancellation import cancel

    waiting = client_app.send_task(
        "celery_tasks.cert.drills.record", args=["flower-cancel", 0], countdown=60
    )
    running = client_app.send_task("celery_tasks.cert.drills.record", args=["flower-cancel", 30])

    def cancelled(task_id):
        try:
            return cancel(task_id)
        except UnknownTask:
            return None  # not yet where cancel looks (on its way to its queue)

    wait_for(lambda: cancelled(waiting.id), 10, "the delayed task to be cancelled")
    wait_for(lambda: _started(running.id), 20, "the task to start")
    cancel(running.id)

    def revoked():
        with get(flower.port, "/api/tasks", auth=flower.credentials) as response:
            tasks = json.load(response)
        seen = {
            task_id: (tasks.get(task_id) or {}).get("state") for task_id in (waiting.id, running.id)
        }
        return seen if set(seen.values()) == {"REVOKED"} else None

    wait_for(revoked, 30, "Flower to show both cancelled tasks as REVOKED")


def _started(task_id) -> bool:
    from platform_core.tasks import drills

    return task_id in drills.starts("flower-cancel")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
                found.add(address)
    return found


def test_flower_listens_on_loopback_only_and_secret_is_not_in_any_command_line(flower):
    for port in (flower.port, flower.metrics_port):
        assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            content = cmdline.read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        assert flower.password.encode() not in content
        assert flower.metrics_password.encode() not in content
