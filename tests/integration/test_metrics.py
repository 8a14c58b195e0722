"""The queue metrics, scraped over HTTP from the Flower process with real workers.

A queue is filled with a known number of messages of known ages while its worker is
paused (its consumer cancelled, one task still running): the scrape's depth and oldest
age match, and its in-flight counts match what `inspect` says the worker holds.
"""

import subprocess
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import free_port, manage, wait_for
from platform_core.config.queues import QUEUES
from tests.integration.http import status, text

RECORD = "celery_tasks.cert.drills.record"


def scrape(flower) -> dict:
    """{(metric sample name, frozenset of labels): value} of one authenticated scrape."""
    body = text(flower.metrics_port, "/metrics", flower.metrics_credentials)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def test_the_metrics_port_wants_its_own_credentials(flower):
    assert status(flower.metrics_port, "/metrics") == 401
    assert status(flower.metrics_port, "/metrics", auth=flower.credentials) == 401
    assert status(flower.metrics_port, "/metrics", auth=flower.metrics_credentials) == 200
    assert status(flower.metrics_port, "/api/workers", auth=flower.metrics_credentials) == 404


def test_flowers_own_metrics_want_flowers_credentials(flower):
    assert status(flower.port, "/metrics") == 401
    assert status(flower.port, "/metrics", auth="admin:wrong-password") == 401
    body = text(flower.port, "/metrics", flower.credentials)
    # One scrape has Flower's figures and the platform's.
    assert "flower_worker_online" in body
    assert "platform_queue_messages_waiting" in body


@pytest.fixture
def paused_cert_worker(client_app):
    """The cert worker running one 8 s task, its consumer cancelled: nothing more is taken."""
    node = _node(client_app, "cert")
    running = client_app.send_task(RECORD, (f"metrics-{uuid.uuid4().hex}", 8))
    wait_for(lambda: _held_ids(client_app, node) == {running.id}, 20, "the task to start")
    client_app.control.cancel_consumer("cert", destination=[node], reply=True)
    # With room left in its prefetch window the worker was waiting for more (BLMOVE, up
    # to kombu's brpop_timeout of 1 s): a wait sent before the cancel may still take one
    # message, so the test's messages are sent once it has ended.
    time.sleep(1.5)
    try:
        yield node, running
    finally:
        client_app.control.add_consumer("cert", destination=[node], reply=True)


def test_depth_oldest_age_and_in_flight_match(flower, client_app, paused_cert_worker):
    node, running = paused_cert_worker
    first = [client_app.send_task(RECORD, ("metrics-old", 0)) for _ in range(5)]
    time.sleep(3)
    later = [client_app.send_task(RECORD, ("metrics-new", 0)) for _ in range(3)]
    started = time.time()
    samples = scrape(flower)
    elapsed = time.time() - started

    waiting = sum(
        value(samples, "platform_queue_messages_waiting", queue="cert", priority=p) for p in "0369"
    )
    assert waiting == len(first) + len(later)
    oldest = value(samples, "platform_queue_oldest_message_age_seconds", queue="cert")
    assert 3.0 <= oldest <= 3.0 + elapsed + 1.0, oldest

    held = _held_ids(client_app, node)
    assert held == {running.id}
    assert value(samples, "platform_queue_messages_in_flight", queue="cert") == len(held)
    pid = client_app.control.inspect(destination=[node], timeout=2).stats()[node]["pid"]
    mine = [
        sample_value
        for (name, labels), sample_value in samples.items()
        if name == "platform_worker_messages_in_flight"
        and dict(labels)["queue"] == "cert"
        and dict(labels)["worker"].split(":")[1] == str(pid)
    ]
    assert mine == [len(held)]
    assert value(samples, "platform_queue_consumers", queue="cert") >= 1  # + any other test's
    assert value(samples, "platform_redis_up") == 1
    assert value(samples, "platform_metrics_redis_round_trips") <= 10

    # Resumed, the worker drains the queue and the figures go back to zero.
    client_app.control.add_consumer("cert", destination=[node], reply=True)
    for result in [running, *first, *later]:
        result.get(timeout=60)
    samples = scrape(flower)
    assert value(samples, "platform_queue_oldest_message_age_seconds", queue="cert") == 0


def test_every_queue_and_lease_is_reported(flower, client_app):
    samples = scrape(flower)
    for queue in QUEUES:
        assert value(samples, "platform_queue_consumers", queue=queue) >= 1, queue
        assert value(samples, "platform_queue_messages_delayed", queue=queue) is not None
    leases = [
        labels
        for (name, labels), sample_value in samples.items()
        if name == "platform_worker_lease_alive" and sample_value == 1
    ]
    assert len(leases) >= 5
    ages = [
        sample_value
        for (name, _), sample_value in samples.items()
        if name == "platform_worker_lease_renewal_age_seconds"
    ]
    assert ages
    assert max(ages) < 15  # renewed every third of the 15 s lease


def _node(client_app, queue) -> str:
    replies = client_app.control.inspect(timeout=2).ping() or {}
    return next(name for name in replies if name.split("@")[0] == queue)


def _held_ids(client_app, node) -> set[str]:
    """What the worker holds, as inspect sees it: active, reserved and scheduled."""
    inspect = client_app.control.inspect(destination=[node], timeout=2)
    ids = set()
    for reply in (inspect.active(), inspect.reserved(), inspect.scheduled()):
        for entry in (reply or {}).get(node, []):
            ids.add(entry.get("id") or entry["request"]["id"])
    return ids


def test_manage_queues_prints_every_queue_and_worker(workers, platform_env):
    result = subprocess.run(
        manage("queues"), env=platform_env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line}
    for queue in QUEUES:
        assert queue in rows, result.stdout
        assert rows[queue][6] == "1", rows[queue]  # its worker, with a live lease
    assert result.stdout.count("lease alive") >= 5


def test_manage_queues_names_the_broker_it_cannot_reach(platform_env):
    env = {**platform_env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    result = subprocess.run(manage("queues"), env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "did not answer" in result.stderr
    assert "Traceback" not in result.stderr
