"""The platform's consumer keeps Celery's task_rejected and task_unknown signals firing.

Fence celery-consumer-bad-messages (platform_core/config/fences.py): PlatformConsumer
replaces Celery's handlers for bad messages. Each crafted message here goes through a
real Celery app's task handler twice — once through stock Celery's Consumer, once
through PlatformConsumer — and the signals each sends are compared. Where stock Celery
sends a signal, the platform sends the same one with the same arguments; the platform
adds task_rejected only where stock Celery sends none (it drops the message unrun).

Only the Redis writes are replaced: the rejection counter and the result backend's
``mark_as_failure`` (recorded, so the unknown task's failed result is checked too).
"""

import json
from unittest.mock import Mock

import pytest
from celery import signals
from celery.exceptions import InvalidTaskError
from celery.worker.consumer import Consumer
from kombu import Connection
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.message import Message
from kombu.serialization import prepare_accept_content

from celery_tasks.cert.probe import whoami
from platform_core.tasks import consumer as platform_consumer
from platform_core.tasks.checks import platform_apps

KNOWN_TASK = whoami.name
BODY = json.dumps([[], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])


@pytest.fixture
def app():
    return platform_apps()["cert"]


@pytest.fixture
def sent(monkeypatch, app):
    """Every task_rejected/task_unknown sent, the rejections reported, the results failed."""
    record = {"signals": [], "reported": [], "failed": []}

    def on_rejected(sender, message, exc, **_):
        record["signals"].append(("task_rejected", type(exc).__name__ if exc else None))

    def on_unknown(sender, message, exc, name, id, **_):
        record["signals"].append(("task_unknown", type(exc).__name__, name, id))

    signals.task_rejected.connect(on_rejected, weak=False)
    signals.task_unknown.connect(on_unknown, weak=False)
    monkeypatch.setattr(
        platform_consumer,
        "report_rejection",
        lambda queue, reason, detail, **_: record["reported"].append(reason),
    )
    monkeypatch.setattr(
        app.backend,
        "mark_as_failure",
        lambda task_id, exc, request=None, **_: record["failed"].append(
            (task_id, type(exc).__name__, request.name)
        ),
    )
    yield record
    signals.task_rejected.disconnect(on_rejected)
    signals.task_unknown.disconnect(on_unknown)


def _message(channel, headers, body=BODY, content_type="application/json"):
    return Message(
        body=body.encode() if isinstance(body, str) else body,
        channel=channel,
        headers=headers,
        content_type=content_type,
        content_encoding="utf-8" if content_type == "application/json" else "binary",
        delivery_tag="tag-1",
        properties={"correlation_id": headers.get("id"), "reply_to": None},
    )


def _deliver(consumer_cls, app, build_message):
    consumer = consumer_cls(
        Mock(), timer=Mock(), controller=Mock(), pool=Mock(), app=app, hostname="t@h"
    )
    connection = Connection("memory://")
    consumer.connection = connection
    task = app.tasks[KNOWN_TASK]
    consumer.strategies[KNOWN_TASK] = task.start_strategy(app, consumer)
    message = build_message(connection.default_channel)
    # As the worker's kombu consumer sets it on every message it receives.
    message.accept = prepare_accept_content(app.conf.accept_content)
    consumer.create_task_handler()(message)
    connection.release()
    return message


def _headers(task=KNOWN_TASK, task_id="0b1e3f4c-0000-4000-8000-000000000001", **more):
    return {"lang": "py", "task": task, "id": task_id, "root_id": task_id, **more}


CASES = {
    # Stock Celery: on_unknown_task -> task_unknown(exc, name, id), result marked failed.
    "unknown-task": lambda ch: _message(ch, _headers(task="celery_tasks.cert.nope")),
    # Stock Celery: no task in headers nor body -> on_unknown_message -> task_rejected(None).
    "not-a-task": lambda ch: _message(ch, {}, body=json.dumps({"no": "task"})),
    # Stock Celery: pickle refused while decoding -> on_invalid_task -> task_rejected(exc).
    "invalid": lambda ch: _message(ch, _headers(), body=b"\x80\x04N.", content_type="pickle"),
    # Stock Celery: on_decode_error acks it and sends nothing; the platform rejects it.
    "undecodable": lambda ch: _message(ch, _headers(), body="[not json"),
    # Stock Celery's strategy would run into it (not compared); the header check drops it.
    "bad-header": lambda ch: _message(ch, _headers(retries="many")),
}

UPSTREAM_DEFINED = ("unknown-task", "not-a-task", "invalid", "undecodable")

EXPECTED = {
    "unknown-task": [
        ("task_unknown", "KeyError", "celery_tasks.cert.nope", _headers()["id"]),
    ],
    "not-a-task": [("task_rejected", None)],
    "invalid": [("task_rejected", ContentDisallowed.__name__)],
    "undecodable": [("task_rejected", DecodeError.__name__)],
    "bad-header": [("task_rejected", "BadMessage")],
}


@pytest.mark.parametrize("case", CASES)
def test_the_platform_sends_the_signals_stock_celery_sends(app, sent, case):
    upstream = {"signals": [], "failed": []}
    if case in UPSTREAM_DEFINED:
        _deliver(Consumer, app, CASES[case])
        upstream = {key: sent[key][:] for key in upstream}
        # What stock Celery 5.7 sends (on_decode_error sends nothing).
        assert upstream["signals"] == ([] if case == "undecodable" else EXPECTED[case])
        sent["signals"].clear()
        sent["failed"].clear()

    message = _deliver(platform_consumer.PlatformConsumer, app, CASES[case])

    assert sent["signals"] == EXPECTED[case]
    if upstream["signals"]:  # where stock Celery sends signals, the platform sends the same
        assert sent["signals"] == upstream["signals"], f"stock Celery sent {upstream}"
    assert sent["failed"] == upstream["failed"]  # the unknown task's result, as stock Celery
    assert sent["reported"] == [case]  # one rejection line, counted under its reason
    assert message.acknowledged  # dropped, not left with the worker


def test_an_unknown_tasks_result_is_marked_failed(app, sent):
    _deliver(platform_consumer.PlatformConsumer, app, CASES["unknown-task"])
    assert sent["failed"] == [(_headers()["id"], "NotRegistered", "celery_tasks.cert.nope")]


def test_an_invalid_task_from_celerys_strategy_is_rejected_with_the_signal(app, sent):
    # Celery's strategy raises InvalidTaskError for what it cannot turn into a request
    # (here forced, as the platform's checks catch every case found so far).
    def invalid(*_args, **_kwargs):
        raise InvalidTaskError("forced")

    for consumer_cls in (Consumer, platform_consumer.PlatformConsumer):
        consumer = consumer_cls(Mock(), timer=Mock(), controller=Mock(), app=app, hostname="t")
        connection = Connection("memory://")
        consumer.connection = connection
        consumer.strategies[KNOWN_TASK] = invalid
        consumer.create_task_handler()(_message(connection.default_channel, _headers()))
        connection.release()
    assert sent["signals"] == [("task_rejected", "InvalidTaskError")] * 2
    assert sent["reported"] == ["invalid"]


def test_a_drill_on_a_worker_without_drills_is_refused_as_unknown_with_its_reason(
    app, sent, settings
):
    # Where PLATFORM_DRILLS is off the drill modules are not loaded: the message reaches
    # the unknown-task path, which names the setting (platform_core.config.drills).
    drill = "celery_tasks.cert.drills.record"
    for drills_on, reason in ((False, "drills-off"), (True, "unknown-task")):
        settings.PLATFORM_DRILLS = drills_on
        message = _deliver(
            platform_consumer.PlatformConsumer,
            app,
            lambda ch: _message(ch, _headers(task=drill)),
        )
        assert sent["reported"] == [reason]
        assert sent["signals"] == [("task_unknown", "KeyError", drill, _headers()["id"])]
        assert sent["failed"] == [(_headers()["id"], "NotRegistered", drill)]
        assert message.acknowledged
        for record in sent.values():
            record.clear()
