"""Real redis-server on a free loopback port, real worker processes, real database."""

import os
import shutil
from dataclasses import dataclass

import pytest

from harness.processes import Process, RedisServer, free_port, manage, wait_for
from platform_core.config.queues import WORKER_COMMANDS
from platform_core.tasks.registry import platform_apps


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            # Worker processes share the test database, so every integration test needs
            # it created (pytest-django creates only databases that marked tests use).
            if not item.get_closest_marker("django_db"):
                item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A private redis-server on the loopback port chosen in tests/conftest.py."""
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed; run scripts/bootstrap (make test does)")
    url = os.environ["REDIS_URL"]
    port = url.rsplit(":", 1)[1].split("/")[0]
    # No persistence: this server lives for one test session only.
    server = RedisServer(tmp_path_factory.mktemp("redis"), int(port), appendonly=False)
    server.start()
    yield url
    server.stop_cleanly()


@pytest.fixture(scope="session")
def partner_port():
    """Where the green_door workers find the (test's) partner service."""
    return free_port()


@pytest.fixture(scope="session")
def platform_env(redis_url, django_db_setup, partner_port):
    """The environment every platform process of the test session runs with."""
    from django.db import connections

    # The test database pytest-django created (and migrated) for this session.
    database = connections["default"].settings_dict["NAME"]
    env = {
        **os.environ,
        "USE_CELERY": "1",
        "REDIS_URL": redis_url,
        "DATABASE_URL": f"sqlite:///{database}",
        "GREEN_DOOR_PARTNER_URL": f"http://127.0.0.1:{partner_port}",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(autouse=True)
def live_apps(redis_url):
    """This test's producer goes through Redis (the test process defaults to USE_CELERY off)."""
    apps = platform_apps().values()
    for app in apps:
        app.conf.task_always_eager = False
    yield
    for app in apps:
        app.conf.task_always_eager = True


@pytest.fixture(scope="session")
def client_app(redis_url):
    return platform_apps()["cert"]


@pytest.fixture(scope="session")
def workers(platform_env, log_dir, client_app, redis_url):
    """All five workers, started with the platform's own management commands."""
    started = {
        queue: Process(f"worker-{queue}", manage(command, "-c", "1"), platform_env, log_dir)
        for queue, command in WORKER_COMMANDS.items()
    }

    def all_answer():
        replies = client_app.control.inspect(timeout=1).ping() or {}
        return {name.split("@")[0] for name in replies} >= set(WORKER_COMMANDS)

    try:
        wait_for(all_answer, 90, "all five workers to answer ping", interval=1)
    except AssertionError:
        for process in started.values():
            print(process.name, process.log()[-3000:])
        raise
    yield started
    for process in started.values():
        process.stop()


@dataclass(frozen=True)
class FlowerEndpoints:
    port: int  # Flower (UI, API, its own /metrics), Flower's credentials
    metrics_port: int  # the platform's metrics listener, its own credentials
    password: str
    metrics_password: str

    @property
    def credentials(self) -> str:
        return f"admin:{self.password}"

    @property
    def metrics_credentials(self) -> str:
        return f"prometheus:{self.metrics_password}"


@pytest.fixture(scope="session")
def flower(workers, platform_env, log_dir, tmp_path_factory):
    """Flower with basic auth and the metrics listener, both secrets in files (0600)."""
    from tests.integration.http import status

    secrets = tmp_path_factory.mktemp("flower")
    endpoints = FlowerEndpoints(
        free_port(), free_port(), f"flower-test-{free_port()}", f"metrics-test-{free_port()}"
    )
    files = {}
    for name, credentials in (
        ("FLOWER_BASIC_AUTH_FILE", endpoints.credentials),
        ("PLATFORM_METRICS_AUTH_FILE", endpoints.metrics_credentials),
    ):
        files[name] = secrets / name.lower()
        files[name].write_text(credentials + "\n")
        files[name].chmod(0o600)
    env = {**platform_env, **{name: str(path) for name, path in files.items()}}
    argv = manage(
        "runflower", "--port", str(endpoints.port), "--metrics-port", str(endpoints.metrics_port)
    )
    process = Process("flower", argv, env, log_dir)
    wait_for(lambda: status(endpoints.port, "/healthcheck") == 200, 30, "Flower to listen")
    yield endpoints
    process.stop()
