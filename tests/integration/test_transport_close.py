"""A channel closed after its connection was torn down (the broker lost mid-work) must
not kill the worker: seen once in the delayed-tasks drill, when Celery closed the
connection after a Redis stop while a message was reserved."""

import logging

import pytest
from kombu import Connection

from platform_core.broker import keys
from platform_core.broker.qos import HAND_BACK, Held
from platform_core.broker.transport import Transport

pytestmark = pytest.mark.integration


def test_closing_with_a_reserved_message_after_the_connection_is_gone(redis_url, caplog):
    connection = Connection(redis_url, transport=Transport)
    channel = connection.channel()
    raw = b'{"body": "", "properties": {"delivery_tag": "t1"}}'
    channel_held = Held(keys.held("test", "cert"), "cert", raw)
    channel.qos.held["t1"] = channel_held
    channel.qos._delivered["t1"] = object()
    # The state the crash showed: the transport's client already cleared by the
    # connection's teardown when the channel closes.
    channel.connection.client = None
    with caplog.at_level(logging.WARNING):
        channel.close()  # used to raise AttributeError('NoneType' … 'hostname')
    assert "1 delivery(ies) not handed back now (the connection is closed)" in caplog.text
    # Not running here: the process's next connection hands it back.
    assert HAND_BACK.pop() == channel_held
