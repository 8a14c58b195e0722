"""The checks against the code they protect: whatever platform_core.broker.message_checks
accepts, kombu's message and Celery's request read without raising — every other
item is refused with a BadMessage that names its field. Runs in-process on the same
hypothesis strategies the real-worker fuzz suite uses, so it tries many more items."""

import json
from datetime import UTC

import pytest
from celery.utils.time import to_utc
from celery.worker.request import Request
from hypothesis import example, given
from hypothesis import strategies as st
from kombu import Connection
from kombu.exceptions import ContentDisallowed, DecodeError
from kombu.serialization import prepare_accept_content
from kombu.utils.json import dumps

from platform_core.broker.envelope import Message, parse
from platform_core.broker.message_checks import check_envelope, check_task_body, check_task_headers
from platform_core.errors import BadMessage
from platform_core.tasks.registry import platform_apps
from tests.strategies.envelopes import ENVELOPE_PATHS, REQUIRED, Item, good_envelope, mutated_items

TASK = "celery_tasks.cert.probe.whoami"


@pytest.fixture(scope="module")
def channel():
    platform_apps()["cert"].loader.import_default_modules()  # as the worker does at start
    with Connection("memory://") as connection:
        yield connection.default_channel


def read_as_the_worker_does(channel, raw: bytes):
    """The transport's, then the consumer's, then Celery's reading of one item."""
    envelope = parse(raw)
    check_envelope(envelope)
    message = Message(envelope, channel=channel)
    message.accept = prepare_accept_content(["json"])
    headers = message.headers
    if not isinstance(headers, dict) or "task" not in headers:
        return "not-a-task"
    check_task_headers(headers)
    try:
        check_task_body(message.payload)
    except (ContentDisallowed, DecodeError):
        return "undecodable"
    app = platform_apps()["cert"]
    if headers["task"] not in app.tasks:
        return "unknown-task"
    request = Request(message, app=app, task=app.tasks[headers["task"]], hostname="fuzz")
    # What Celery's strategy and pool then do with it.
    for moment in (request.eta, request.expires):
        if moment is not None:
            to_utc(moment).astimezone(UTC).timestamp()
    _soft, _hard = request.time_limits
    request.revoked()  # the pool checks this before running it (stamps against revokes)
    dumps({"argsrepr": request.argsrepr, "retries": request.request_dict.get("retries", 0)})
    return "accepted"


def outcome_of(channel, raw: bytes):
    """What the worker makes of ``raw``: an outcome name, or the BadMessage refusing it."""
    try:
        return read_as_the_worker_does(channel, raw)
    except BadMessage as refused:
        return refused


def _content_encoding_of_nulls():
    # Found by this test: codecs.lookup raises ValueError, not LookupError, on a NUL.
    envelope = good_envelope("cert", TASK)
    envelope["content-encoding"] = "\x00" * 1000
    return Item("cert", envelope, ("content-encoding",), "huge", False)


def _stamped_headers_of_objects():
    # Found by the worker fuzz suite: Request.revoked() looks each stamped header up in
    # a dict; an object there raised TypeError in the pool's callback and the worker died.
    envelope = good_envelope("cert", TASK)
    envelope["headers"]["stamped_headers"] = [{}]
    return Item("cert", envelope, ("headers", "stamped_headers"), "wrong type", False)


@given(item=mutated_items("cert", TASK))
@example(item=_content_encoding_of_nulls())
@example(item=_stamped_headers_of_objects())
def test_an_item_is_either_refused_by_name_or_readable_by_celery(channel, item):
    raw = item.envelope if isinstance(item.envelope, str) else json.dumps(item.envelope)
    outcome = outcome_of(channel, raw.encode())
    if isinstance(outcome, BadMessage):
        assert outcome.field
        assert outcome.problem
        assert outcome.reason in {"not-an-envelope", "bad-envelope", "bad-header", "bad-body"}
    elif item.must_be_rejected:
        assert outcome != "accepted", item


@given(value=st.recursive(st.none() | st.integers() | st.text(), st.lists, max_leaves=5))
def test_a_json_value_that_is_not_an_object_is_not_an_envelope(channel, value):
    with pytest.raises(BadMessage) as refused:
        read_as_the_worker_does(channel, json.dumps(value).encode())
    assert refused.value.reason == "not-an-envelope"


@pytest.mark.parametrize("path", sorted(p for p in REQUIRED if p in ENVELOPE_PATHS))
def test_a_required_field_missing_is_named(channel, path):
    envelope = good_envelope("cert", TASK)
    container = envelope
    for step in path[:-1]:
        container = container[step]
    del container[path[-1]]
    outcome = outcome_of(channel, json.dumps(envelope).encode())
    if path in {("headers",), ("headers", "task")}:
        assert outcome == "not-a-task"
    else:
        assert outcome.field.endswith(path[-1]), (outcome.field, path)
        assert "missing" in outcome.problem


def test_a_good_item_is_accepted(channel):
    envelope = good_envelope("cert", TASK)
    assert read_as_the_worker_does(channel, json.dumps(envelope).encode()) == "accepted"


def test_nesting_deeper_than_the_parser_allows_is_not_an_envelope(channel):
    with pytest.raises(BadMessage) as refused:
        read_as_the_worker_does(channel, b"[" * 100_000 + b"]" * 100_000)
    assert refused.value.reason == "not-an-envelope"
