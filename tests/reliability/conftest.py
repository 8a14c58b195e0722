"""Fault injection on real processes: a private redis-server (AOF on, as deployed) and
worker processes started per test, so a test may kill any of them.

The site queues' hard time limit is shortened to 5 s through the platform's own
setting, so that a runaway task costs a test seconds, not minutes. Leases run with
production defaults unless a test says otherwise.
"""

import os
import uuid

import pytest
from celery import Celery

from harness.processes import Process, RedisServer, free_port, manage, wait_for
from harness.sentinel import MASTER_NAME, BrokerGroup
from platform_core.broker import keys
from platform_core.config.queues import QUEUES, WORKER_COMMANDS

SHORT_LIMITS_ENV = {"PLATFORM_SITE_TASK_TIME_LIMIT": "5", "PLATFORM_LONG_TASK_TIME_LIMIT": "120"}


def pytest_collection_modifyitems(items):
    for item in items:
        if "/reliability/" in str(item.fspath):
            item.add_marker(pytest.mark.reliability)
            if not item.get_closest_marker("django_db"):
                item.add_marker(pytest.mark.django_db(transaction=True))


@pytest.fixture
def broker(tmp_path):
    server = RedisServer(tmp_path / "redis", free_port())
    server.directory.mkdir()
    server.start()
    yield server
    if server.process.poll() is None:
        server.kill_9()


@pytest.fixture
def broker_group(tmp_path):
    """A primary, a replica and three Sentinels (harness/sentinel.py); the primary's host
    can be lost with ``kill_primary()``."""
    group = BrokerGroup(tmp_path / "broker-group")
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.fixture
def broker_group_of_three(tmp_path):
    """A primary, two replicas and three Sentinels: a primary's host can be lost while a
    replica still confirms every enqueue (``silence_primary()``)."""
    group = BrokerGroup(tmp_path / "broker-group", replicas=2)
    try:
        group.start()
        yield group
    finally:
        group.stop()


def sentinel_env(group: BrokerGroup, min_replicas: int = 1, replica_timeout_ms: int = 500):
    """What a platform process is given to follow the group: the sentinel URL, the
    master's name and how many replicas confirm each enqueue (WAIT)."""
    return {
        "REDIS_URL": group.sentinel_url(),
        "PLATFORM_BROKER_MASTER_NAME": MASTER_NAME,
        "PLATFORM_BROKER_MIN_REPLICAS": str(min_replicas),
        "PLATFORM_BROKER_REPLICA_TIMEOUT_MS": str(replica_timeout_ms),
    }


@pytest.fixture
def platform_env_short(broker, django_db_setup, tmp_path):
    from django.db import connections

    return {
        **os.environ,
        "USE_CELERY": "1",
        "REDIS_URL": broker.url,
        "DATABASE_URL": f"sqlite:///{connections['default'].settings_dict['NAME']}",
        "PYTHONUNBUFFERED": "1",
        **SHORT_LIMITS_ENV,
    }


@pytest.fixture
def start_worker(platform_env_short, tmp_path):
    started = []

    def start(queue="cert", name=None, concurrency=1, extra_env=None, extra_args=()):
        name = name or f"{queue}-{len(started)}"
        env = {**platform_env_short, **(extra_env or {})}
        argv = manage(
            WORKER_COMMANDS[queue], "-c", str(concurrency), "-n", f"{name}@%h", *extra_args
        )
        process = Process(f"worker-{name}", argv, env, tmp_path)
        wait_for(
            lambda: " ready." in process.log() or not process.alive(),
            60,
            f"worker {name} to start",
        )
        assert process.alive(), f"worker {name} exited at start:\n{process.log()[-3000:]}"
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop(timeout=30)


@pytest.fixture
def client(broker):
    """A plain Celery producer: stock kombu transport, names and queues only."""
    app = Celery("fault-tests", broker=broker.url, backend=broker.url)
    app.conf.broker_connection_retry_on_startup = True
    # redis:// would resolve to the platform's transport once this process imported it.
    app.conf.broker_transport = "kombu.transport.redis:Transport"
    yield app
    close_client(app)


@pytest.fixture
def platform_client(broker):
    """A producer on the platform's transport (it parks far delays in Redis as it sends)."""
    app = Celery("fault-tests-platform", broker=broker.url, backend=broker.url)
    app.conf.broker_connection_retry_on_startup = True
    app.conf.broker_transport = "platform_core.broker.transport:Transport"
    yield app
    close_client(app)


def close_client(app):
    """Forget the results this test subscribed to before its Redis goes: a result object
    garbage-collected later, in another test, would otherwise unsubscribe through a Redis
    that is gone, and Celery retries that 20 times, 1 s apart, stalling that test (a CI
    run saw the whole-worker kill's checks 20 s late)."""
    consumer = app.backend.result_consumer
    consumer.subscribed_to.clear()
    consumer.stop()
    app.close()


def send(client, queue, task, *args, **options):
    return client.send_task(f"celery_tasks.{queue}.{task}", args=args, queue=queue, **options)


def drill_executions(broker, token) -> dict:
    raw = broker.client().hgetall(f"platform:drill:{token}")
    return {key.decode(): int(value) for key, value in raw.items()}


def drill_started_at(broker, token) -> dict:
    raw = broker.client().hgetall(f"platform:drill:{token}:started_at")
    return {key.decode(): float(value) for key, value in raw.items()}


def new_token() -> str:
    return uuid.uuid4().hex


def pool_children(pid: int) -> list[int]:
    children = open(f"/proc/{pid}/task/{pid}/children").read().split()
    return [int(child) for child in children]


FIGURES_FILE = os.environ.get("RELIABILITY_FIGURES", "")


@pytest.fixture
def record_figure(request):
    """Print (and, with RELIABILITY_FIGURES=path, append) what a fault test measured."""

    def record(fault, **figures):
        line = f"{request.node.name}: {fault}: " + ", ".join(
            f"{key}={value:.1f}" if isinstance(value, float) else f"{key}={value}"
            for key, value in figures.items()
        )
        print(line)
        if FIGURES_FILE:
            with open(FIGURES_FILE, "a", encoding="utf-8") as handle:
                handle.write(line + "\n")

    return record


# Every queue's held lists (keys.Room.held), for counting what is in flight anywhere.
HELD_LISTS = f"{keys.QUEUE_PREFIX}*:held:*"


def rejected_counts(broker) -> dict[str, int]:
    """``<queue>:<reason>`` -> messages refused, over every queue's room."""
    client = broker.client()
    return {
        f"{queue}:{reason.decode()}": int(count)
        for queue in QUEUES
        for reason, count in client.hgetall(keys.Room(queue).rejected).items()
    }
