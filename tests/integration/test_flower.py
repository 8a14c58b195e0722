"""Flower lists all five workers, behind basic auth whose secret is not in any argv."""

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.processes import Process, free_port, manage, wait_for

PASSWORD = "flower-test-secret-%d" % free_port()  # noqa: UP031


@pytest.fixture(scope="module")
def flower(workers, platform_env, log_dir, tmp_path_factory):
    credentials = tmp_path_factory.mktemp("flower") / "credentials"
    credentials.write_text(f"admin:{PASSWORD}\n")
    credentials.chmod(0o600)
    port = free_port()
    env = {**platform_env, "FLOWER_BASIC_AUTH_FILE": str(credentials)}
    process = Process("flower", manage("runflower", "--port", str(port)), env, log_dir)
    wait_for(lambda: _status(port, "/healthcheck") == 200, 30, "Flower to listen")
    yield port, process
    process.stop()


def _request(port, path, auth=None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth:
        token = base64.b64encode(auth.encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    return urllib.request.urlopen(request, timeout=10)


def _status(port, path, auth=None):
    try:
        with _request(port, path, auth) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def test_flower_refuses_without_credentials(flower):
    port, _ = flower
    assert _status(port, "/api/workers") == 401
    assert _status(port, "/api/workers", auth="admin:wrong-password") == 401


def test_flower_lists_all_five_workers_with_credentials(flower):
    port, _ = flower

    def names():
        with _request(port, "/api/workers?refresh=1", auth=f"admin:{PASSWORD}") as response:
            return {name.split("@")[0] for name in json.load(response)}

    seen = wait_for(
        lambda: (n := names()) >= {"cert", "green_door", "pqs", "api", "long_running"} and n,
        30,
        "Flower to see five workers",
    )
    assert seen == {"cert", "green_door", "pqs", "api", "long_running"}


def test_flower_sees_the_tasks_of_every_queue(flower, client_app):
    port, _ = flower
    sent = {
        queue: client_app.send_task(f"celery_tasks.{queue}.probe.whoami").id
        for queue in ("cert", "green_door", "pqs", "api", "long_running")
    }

    def states():
        with _request(port, "/api/tasks", auth=f"admin:{PASSWORD}") as response:
            tasks = json.load(response)
        return {queue: (tasks.get(task_id) or {}).get("state") for queue, task_id in sent.items()}

    def all_succeeded():
        seen = states()
        return seen if set(seen.values()) == {"SUCCESS"} else None

    seen = wait_for(all_succeeded, 30, "Flower to see every probe succeed (from task events)")
    assert set(seen) == set(sent)


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
    port, _ = flower
    assert _listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            assert PASSWORD.encode() not in cmdline.read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
