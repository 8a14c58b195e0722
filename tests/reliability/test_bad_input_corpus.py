"""Promise 7 and "no pickle anywhere": a fixed corpus of hostile messages at every queue
while good tasks flow. Each bad one is rejected and counted; every good one completes;
no worker dies."""

import pickle

import pytest

from harness.processes import wait_for
from platform_core.config.queues import QUEUES
from tests.integration import raw_messages
from tests.reliability.conftest import rejected_counts

GOOD_PER_QUEUE = 10


def _corpus(queue):
    probe = f"celery_tasks.{queue}.probe.whoami"
    huge = raw_messages.json_body(args=("x" * (50 * 1024 * 1024),))
    return [
        # (name, how to push, expected counter reason)
        (
            "invalid JSON",
            dict(
                body=raw_messages.invalid_json_body(), content_type="application/json", task=probe
            ),
            "undecodable",
        ),
        (
            "pickle",
            dict(
                body=pickle.dumps(((), {}, {})),
                content_type="application/x-python-serialize",
                task=probe,
            ),
            "invalid",
        ),
        (
            "YAML",
            dict(body=b"- []\n- {}\n", content_type="application/x-yaml", task=probe),
            "invalid",
        ),
        (
            "unknown task",
            dict(
                body=raw_messages.json_body(),
                content_type="application/json",
                task=f"celery_tasks.{queue}.nope.missing",
            ),
            "unknown-task",
        ),
        (
            "wrong arity",
            dict(
                body=raw_messages.json_body(args=(1, 2, 3)),
                content_type="application/json",
                task=probe,
            ),
            "wrong-arguments",
        ),
        ("50 MB body", dict(body=huge, content_type="application/json", task=probe), "too-large"),
        (
            "headers missing",
            dict(
                body=raw_messages.json_body(),
                content_type="application/json",
                task=probe,
                headers={},
            ),
            "not-a-task",
        ),
        (
            "headers null",
            dict(
                body=raw_messages.json_body(),
                content_type="application/json",
                task=probe,
                headers=None,
            ),
            "not-a-task",
        ),
    ]


def _push_envelope_garbage(broker, queue):
    """Not even a kombu envelope: bytes that are not JSON at all."""
    broker.client().lpush(queue, b"\x80\x04garbage that is not an envelope")


@pytest.fixture
def five_workers(start_worker):
    return {queue: start_worker(queue) for queue in QUEUES}


def test_hostile_corpus_at_every_queue_while_good_tasks_flow(
    broker, client, five_workers, record_figure
):
    good, expected = [], {}
    for queue in QUEUES:
        _push_envelope_garbage(broker, queue)
        expected[f"{queue}:not-an-envelope"] = 1
        for _name, message, reason in _corpus(queue):
            raw_messages.push(broker.url, queue, **message)
            expected[f"{queue}:{reason}"] = expected.get(f"{queue}:{reason}", 0) + 1
            good.append(client.send_task(f"celery_tasks.{queue}.probe.whoami", queue=queue))
        for _ in range(GOOD_PER_QUEUE - len(_corpus(queue))):
            good.append(client.send_task(f"celery_tasks.{queue}.probe.whoami", queue=queue))

    answers = [result.get(timeout=60) for result in good]
    assert len(answers) == GOOD_PER_QUEUE * len(QUEUES)

    wait_for(lambda: rejected_counts(broker) == expected, 30, "every bad message to be counted")
    for queue, worker in five_workers.items():
        assert worker.alive(), queue
    record_figure(
        "hostile corpus (9 kinds) at 5 queues with 50 good tasks",
        bad_rejected=sum(expected.values()),
        good_completed=len(answers),
        workers_died=0,
    )


def test_pickle_is_refused_even_when_it_would_be_valid(broker, client, start_worker):
    """The pickle would run the probe if accepted; it must not run at all."""
    worker = start_worker("cert")
    task_id = raw_messages.push(
        broker.url,
        "cert",
        pickle.dumps(((), {}, raw_messages.EMBED)),
        "application/x-python-serialize",
        "celery_tasks.cert.probe.whoami",
    )
    wait_for(lambda: task_id in worker.log(), 20, "the rejection")
    assert "Refusing to deserialize untrusted content of type pickle" in worker.log()
    assert f"{task_id}] succeeded" not in worker.log()
