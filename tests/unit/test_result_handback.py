"""Which result writes go back to the worker's main process (tasks.result_handback), and
that none is lost there: the decisions alone. A real worker storing results with its
acks runs in tests/integration/test_result_store.py."""

from types import SimpleNamespace

import pytest
from celery import states
from celery.app import trace as celery_trace

from platform_core.broker import ack_results
from platform_core.broker.ack_results import ResultWrite
from platform_core.tasks import result_handback


def write(name="x"):
    return ResultWrite(f"celery-task-meta-{name}", name, 0)


def traced(task_id, *writes):
    """trace_and_hand_back on a stand-in trace function making ``writes`` (task id,
    state, request, write) through hand_back; returns (its return, what each got)."""
    answers = []

    def trace(*args):
        for written in writes:
            answers.append(result_handback.hand_back(*written))
        return (0, "'repr'", 0.01)

    return result_handback.trace_and_hand_back(trace, "task.name", task_id, {}), answers


def test_the_final_result_goes_back_after_celerys_return():
    returned, answers = traced("t1", ("t1", states.SUCCESS, None, write("ok")))
    assert answers == [True]
    assert returned == (0, "'repr'", 0.01, (states.SUCCESS, write("ok")))


@pytest.mark.parametrize("state", [states.STARTED, states.RETRY, "PROGRESS"])
def test_a_state_written_while_the_task_runs_is_stored_at_once(state):
    returned, answers = traced("t1", ("t1", state, None, write()))
    assert answers == [False]
    assert returned[3] is None


def test_another_tasks_result_and_a_chord_members_are_stored_at_once():
    chord_member = SimpleNamespace(chord={"task": "callback"})
    returned, answers = traced(
        "t1",
        ("other", states.SUCCESS, None, write()),
        ("t1", states.SUCCESS, chord_member, write()),
    )
    assert answers == [False, False]
    assert returned[3] is None


def test_a_first_success_is_kept_as_redis_keeps_it():
    returned, _ = traced(
        "t1",
        ("t1", states.SUCCESS, None, write("first")),
        ("t1", states.FAILURE, None, write("late")),
    )
    assert returned[3] == (states.SUCCESS, write("first"))
    returned, _ = traced(
        "t1",
        ("t1", states.FAILURE, None, write("failed")),
        ("t1", states.SUCCESS, None, write("then")),
    )
    assert returned[3] == (states.SUCCESS, write("then"))


def test_outside_the_trace_nothing_is_handed_back():
    assert not result_handback.hand_back("t1", states.SUCCESS, None, write())


def _pool():
    applied = []

    def apply_async(target, args=None, kwargs=None, **options):
        applied.append((target, args, options))

    pool = SimpleNamespace(apply_async=apply_async)
    stored = []
    result_handback.wrap_pool(pool, stored.append)
    return pool, applied, stored


def test_only_celerys_trace_functions_are_wrapped():
    pool, applied, _ = _pool()
    pool.apply_async(print, ("a",), callback=print)
    pool.apply_async(celery_trace.fast_trace_task, ("name", "t1"), callback=print)
    assert applied[0][0] is print
    target, args, options = applied[1]
    assert target is result_handback.trace_and_hand_back
    assert args == (celery_trace.fast_trace_task, "name", "t1")
    assert options["callback"] is not print


class Request:
    """Stands in for Celery's Request: its bound on_success is the pool callback, and
    ``acknowledged`` is set as Celery sets it (the ack itself runs a moment later)."""

    def __init__(self, acknowledged=False, acknowledges=True):
        self.acknowledged = acknowledged
        self.acknowledges = acknowledges
        self.got = []

    def on_success(self, returned):
        self.got.append(returned)
        if self.acknowledges:
            self.acknowledged = True

    def later_ack(self):
        """What the event loop runs next: the queue's ack takes the result."""
        return ack_results.take(SimpleNamespace(headers={"id": "t1"}))


def _return_through_pool(request):
    pool, applied, stored = _pool()
    pool.apply_async(celery_trace.fast_trace_task, ("name", "t1"), callback=request.on_success)
    applied[0][2]["callback"]((0, "'repr'", 0.01, (states.SUCCESS, write("t1"))))
    return stored


def test_the_acknowledgement_takes_the_result():
    request = Request()
    stored = _return_through_pool(request)
    assert request.got == [(0, "'repr'", 0.01)]  # Celery sees its own 3-tuple
    assert stored == []
    assert request.later_ack() == write("t1")
    assert ack_results.WITH_ACK == {}


@pytest.mark.parametrize(
    "request_",
    [Request(acknowledged=True), Request(acknowledges=False)],
    ids=["acknowledged-before-it-ran", "not-acknowledged"],
)
def test_a_result_no_acknowledgement_will_take_is_stored_at_once(request_):
    stored = _return_through_pool(request_)
    assert request_.got == [(0, "'repr'", 0.01)]
    assert stored == [write("t1")]
    assert ack_results.WITH_ACK == {}
