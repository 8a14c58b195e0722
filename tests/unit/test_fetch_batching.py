"""When a busy worker fetches (broker.channel.Channel._fetch_can_wait): once half its
prefetch window is free, or once an acknowledgement has waited ACK_BATCH_SECONDS — the
decision alone; the fetch itself runs against a real Redis in the integration and
reliability tests."""

from collections import deque
from time import monotonic
from types import SimpleNamespace

import pytest

from platform_core.broker.channel import Channel
from platform_core.broker.qos import ACK_BATCH_SECONDS, QoS
from platform_core.broker.qos import ORPHANED_ACKS as orphaned


class Loop:
    def __init__(self):
        self.timers = []

    def call_later(self, seconds, callback):
        self.timers.append((seconds, callback))


def channel(window, pending=0, pending_for=0.0, loop=None):
    qos = SimpleNamespace(
        prefetch_count=window,
        pending_acks=deque(range(pending)),
        pending_since=(monotonic() - pending_for) if pending else None,
    )
    qos.acks_due = lambda: QoS.acks_due(qos)
    fake = SimpleNamespace(qos=qos, connection=SimpleNamespace(loop=loop), _wake_pending=False)
    fake._wake = lambda: Channel._wake(fake)
    return fake


def can_wait(fake, room):
    return Channel._fetch_can_wait(fake, room)


@pytest.mark.parametrize("window", [0, 1, 2])
def test_a_window_of_one_or_two_fetches_at_every_free_slot(window):
    assert not can_wait(channel(window, pending=1, loop=Loop()), room=1)


def test_half_a_window_free_fetches():
    assert not can_wait(channel(8, pending=4, loop=Loop()), room=4)


def test_less_than_half_free_waits_and_the_loop_is_woken_when_the_acks_are_due():
    loop = Loop()
    fake = channel(8, pending=2, loop=loop)
    assert can_wait(fake, room=2)
    assert [seconds for seconds, _ in loop.timers] == [ACK_BATCH_SECONDS]
    assert can_wait(fake, room=3)  # one wake-up at a time
    assert len(loop.timers) == 1
    loop.timers[0][1]()
    assert fake._wake_pending is False


def test_an_ack_that_waited_long_enough_is_fetched_with_now():
    assert not can_wait(channel(8, pending=1, pending_for=ACK_BATCH_SECONDS, loop=Loop()), 1)


def test_acks_left_by_a_lost_connection_are_fetched_with_now():
    orphaned.append("an ack")
    try:
        assert not can_wait(channel(8, pending=0, loop=Loop()), room=1)
    finally:
        orphaned.clear()


def test_without_an_event_loop_nothing_waits():
    assert not can_wait(channel(8, pending=1, loop=None), room=1)


def test_running_tasks_without_acks_wait_for_room_without_a_timer():
    loop = Loop()
    assert can_wait(channel(8, pending=0, loop=loop), room=1)
    assert loop.timers == []
