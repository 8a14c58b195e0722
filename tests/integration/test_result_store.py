"""A result is written in one round trip (lua/store_result.lua) with what Celery's own
Redis backend writes: the same stored meta and expiry, published to whoever waits, and a
stored SUCCESS never overwritten (fence celery-result-store)."""

import json
import threading
import uuid

import pytest
import redis
from celery import Celery, states

from platform_core.broker import scripts
from platform_core.tasks import results

SKEW_SECONDS = 2  # a TTL read back a moment after the write


@pytest.fixture
def backend(client_app):
    return client_app.backend


@pytest.fixture
def stock_backend(redis_url):
    app = Celery("stock", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.result_expires = 24 * 60 * 60
    yield app.backend
    app.close()


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def stored(client, task_id):
    return json.loads(client.get(f"celery-task-meta-{task_id}"))


def without_date(meta):
    return {key: value for key, value in meta.items() if key != "date_done"}


def test_it_stores_what_celery_stores_with_the_same_expiry(backend, stock_backend, client):
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    backend.store_result(ours, {"answer": [1, "two"]}, states.SUCCESS)
    stock_backend.store_result(theirs, {"answer": [1, "two"]}, states.SUCCESS)
    assert without_date(stored(client, ours)) == {
        **without_date(stored(client, theirs)),
        "task_id": ours,
    }
    ttl = client.ttl(f"celery-task-meta-{ours}")
    assert backend.expires - SKEW_SECONDS <= ttl <= backend.expires
    assert abs(ttl - client.ttl(f"celery-task-meta-{theirs}")) <= SKEW_SECONDS


def test_it_publishes_the_result_to_whoever_waits(backend, client):
    task_id = str(uuid.uuid4())
    listener = client.pubsub()
    listener.subscribe(f"celery-task-meta-{task_id}")
    assert listener.get_message(timeout=2)["type"] == "subscribe"
    backend.store_result(task_id, 42, states.SUCCESS)
    message = listener.get_message(timeout=2)
    listener.close()
    assert json.loads(message["data"])["result"] == 42


def test_a_stored_success_is_never_overwritten(backend, client):
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, "first", states.SUCCESS)
    backend.store_result(task_id, ValueError("a late duplicate"), states.FAILURE)
    backend.store_result(task_id, None, states.STARTED)
    assert stored(client, task_id)["status"] == states.SUCCESS
    assert stored(client, task_id)["result"] == "first"


def test_any_other_state_is_replaced(backend, client):
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, {"pid": 1}, states.STARTED)
    backend.store_result(task_id, ValueError("boom"), states.FAILURE)
    assert stored(client, task_id)["status"] == states.FAILURE
    backend.store_result(task_id, "after a retry", states.SUCCESS)
    assert stored(client, task_id)["result"] == "after a retry"


def test_it_is_one_command_per_result(backend, client):
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, "warm-up", states.STARTED)  # the script is loaded
    before = client.info("commandstats")
    for _ in range(10):
        backend.store_result(task_id, "again", states.STARTED)
    after = client.info("commandstats")

    def calls(name):
        return after.get(f"cmdstat_{name}", {}).get("calls", 0) - before.get(
            f"cmdstat_{name}", {}
        ).get("calls", 0)

    assert calls("evalsha") == 10
    assert calls("multi") == calls("exec") == calls("setex") == 0
    assert calls("get") == 10  # inside the script, not a round trip of its own


def test_a_pickled_result_takes_celerys_own_path(redis_url, client):
    app = Celery("pickled", backend=redis_url, set_as_current=False)
    app.conf.result_serializer = "pickle"
    app.conf.accept_content = app.conf.result_accept_content = ["pickle", "json"]
    results.install(app)
    task_id = str(uuid.uuid4())
    setex_before = client.info("commandstats").get("cmdstat_setex", {}).get("calls", 0)
    app.backend.store_result(task_id, {1, 2}, states.SUCCESS)
    assert client.info("commandstats")["cmdstat_setex"]["calls"] == setex_before + 1
    assert app.backend.get_task_meta(task_id)["result"] == {1, 2}
    app.close()


class Monitor:
    """Every command Redis runs while open (MONITOR), read by a thread."""

    END = "result-store-test-monitor-end"

    def __init__(self, redis_url):
        self.client = redis.Redis.from_url(redis_url)
        self.commands: list[tuple[str, str]] = []  # (client address:port, command)
        self._monitor = self.client.monitor().__enter__()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        while True:
            seen = self._monitor.next_command()
            if self.END in seen["command"]:
                return
            client = f"{seen['client_address']}:{seen['client_port']}"
            self.commands.append((client, seen["command"]))

    def close(self) -> list[tuple[str, str]]:
        self.client.echo(self.END)
        self._thread.join(timeout=10)
        self._monitor.__exit__(None, None, None)
        self.client.close()
        return self.commands


@pytest.mark.django_db(transaction=True)
def test_a_workers_results_ride_on_its_acks(workers, redis_url, client):
    """A task's final result goes back to the worker's main process and is stored in the
    step that acknowledges its message (tasks.result_handback): inside the fetch script
    that carries the ack, or in the ack's own pipeline (result script, then the LREM of
    the held message, from the same connection) when no fetch is coming. The caller reads
    the result as before; a retry's RETRY state, written while the task is still to run
    again, is stored by the pool process at once."""
    from celery_tasks.cert import drills
    from celery_tasks.cert.probe import whoami

    monitor = Monitor(redis_url)
    try:
        sent = [whoami.delay() for _ in range(10)]
        retried = drills.retry_once.delay(f"handback-{uuid.uuid4()}", 0.2)
        answers = [result.get(timeout=20) for result in sent]
        assert retried.get(timeout=20) == 1
    finally:
        commands = monitor.close()
    assert {answer["queue"] for answer in answers} == {"cert"}
    for result in sent:
        key = f"celery-task-meta-{result.id}"
        # (twice when Redis answered NOSCRIPT first: the script is loaded, sent again)
        writes = [i for i, (_, command) in enumerate(commands) if _is_write_of(key, command)]
        assert writes
        for at in writes:
            connection, command = commands[at]
            if scripts.FETCH.sha not in command:
                assert scripts.STORE_RESULT.sha in command
                then = next(c for who, c in commands[at + 1 :] if who == connection)
                assert then.startswith("LREM platform:queue:cert:held:")
        assert stored(client, result.id)["status"] == states.SUCCESS
    retry_key = f"celery-task-meta-{retried.id}"
    retry_writes = [c for _, c in commands if _is_write_of(retry_key, c) and '"RETRY"' in c]
    assert retry_writes  # (twice if Redis answered NOSCRIPT first: loaded, sent again)
    assert all(scripts.STORE_RESULT.sha in write for write in retry_writes)
    assert stored(client, retried.id)["status"] == states.SUCCESS


def _is_write_of(key, command):
    return command.startswith("EVALSHA") and key in command
