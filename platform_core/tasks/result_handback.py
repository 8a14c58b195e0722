"""A task's result goes back to the worker's main process and is stored with its ack.

Stock Celery stores a result from the pool child that ran the task (a Redis round trip
per task in every child), and the main process acknowledges the message a moment later.
Here the child hands the encoded result back with the task's return value and the main
process stores it in the step that acknowledges the message (broker.ack_results: inside
the fetch script that removes it from the worker's held list). One round trip less per
task, no Redis client work in the child, and result and acknowledgement are one atomic
step: a worker killed between them leaves neither (the task is redelivered, as before),
never a stored SUCCESS for a message that is handed out again.

What a user sees differently: the result becomes readable when the message is
acknowledged, at most qos.ACK_BATCH_SECONDS after the task returned (a waiter is woken by
the same PUBLISH). A result stored while the task runs (``update_state``, STARTED) is
written at once as before; so is every result of a chord member (Celery's chord counting
reads them), and of a worker whose result backend is not its broker's Redis.

fence: celery-result-handback (platform_core/config/fences.py): Celery's pool callback
receives ``(failed, retval, runtime)`` from the trace function it sends to the pool
(celery.app.trace.fast_trace_task / trace_task_ret, task id second), is the request's
bound ``on_success``, and marks the request ``acknowledged`` when it acknowledges or
rejects (celery.worker.request).
"""

import threading
from functools import partial

from celery import bootsteps, states
from celery.app import trace as celery_trace

from platform_core.broker import ack_results
from platform_core.broker.ack_results import ResultWrite

# What Celery's Request sends to the pool (create_request_cls): wrapped only these.
TRACE_FUNCTIONS = (celery_trace.fast_trace_task, celery_trace.trace_task_ret)

_tracing = threading.local()  # the task this thread runs through trace_and_hand_back


def trace_and_hand_back(trace, *args, **kwargs):
    """Run in the pool (child process, thread, or the solo worker itself): Celery's trace
    function, its final result held back instead of stored (hand_back), and returned to
    the main process after Celery's ``(failed, retval, runtime)``."""
    _tracing.task_id, _tracing.result = args[1], None
    try:
        returned = trace(*args, **kwargs)
    finally:
        result, _tracing.task_id, _tracing.result = _tracing.result, None, None
    return (*returned, result)


def hand_back(task_id, state, request, write: ResultWrite) -> bool:
    """Called by the result backend for each write: True if ``write`` is this thread's
    traced task's final result (kept to go back with the return value), False if it is
    to be stored now."""
    if getattr(_tracing, "task_id", None) != task_id or state not in states.READY_STATES:
        return False
    if request is not None and getattr(request, "chord", None):
        return False  # the chord's counting (on_chord_part_return) follows the store
    kept = _tracing.result
    if kept is None or kept[0] != states.SUCCESS:  # a SUCCESS stays, as in Redis
        _tracing.result = (state, write)
    return True


def _returned(callback, task_id, store_now, returned):
    """In the main process: the pool's return for one task.

    Celery's callback (Request.on_success) acknowledges through the event loop (the ack
    runs a moment later, Consumer.call_soon_ack), marking the request ``acknowledged`` at
    once: a result whose request is acknowledged during the callback waits for that ack
    (broker.qos.QoS takes it, or stores it if the message is not one it holds); one whose
    request was acknowledged before (acks early) or is not acknowledged (left to be
    redelivered) is stored here, before Celery hears of the return, as stock Celery
    stores it before."""
    if len(returned) != 4:  # not through trace_and_hand_back (e.g. an internal error)
        callback(returned)
        return
    *celerys, handed = returned
    if handed is None:
        callback(tuple(celerys))
        return
    write = handed[1]
    request = getattr(callback, "__self__", None)
    if getattr(request, "acknowledged", True):
        store_now(write)
        callback(tuple(celerys))
        return
    ack_results.WITH_ACK[task_id] = write
    try:
        callback(tuple(celerys))
    finally:
        if not request.acknowledged:
            left = ack_results.WITH_ACK.pop(task_id, None)
            if left is not None:
                store_now(left)


def wrap_pool(pool, store_now) -> None:
    """Make ``pool`` run Celery's trace functions through trace_and_hand_back."""
    apply_async = pool.apply_async

    def apply_handing_back(target, args=None, kwargs=None, **options):
        callback = options.get("callback")
        if target not in TRACE_FUNCTIONS or callback is None or not args:
            return apply_async(target, args, kwargs, **options)
        options["callback"] = partial(_returned, callback, args[1], store_now)
        return apply_async(trace_and_hand_back, (target, *args), kwargs, **options)

    pool.apply_async = apply_handing_back


def hands_back(app) -> bool:
    """Whether ``app``'s results can ride on its acknowledgements: written by the
    platform's one-script result write, into the broker's own Redis."""
    from platform_core.tasks.results import LazyRedisBackend

    backend = app.backend
    return (
        isinstance(backend, LazyRedisBackend)
        and backend.stores_in_one_round_trip
        and app.conf.result_backend == app.conf.broker_url
    )


class HandBackResults(bootsteps.Step):
    """Worker step: once the pool exists, its tasks hand their results back (Celery's
    consumer takes ``pool.apply_async`` when it starts, after every step is created)."""

    requires = ("celery.worker.components:Pool",)

    def create(self, worker):
        if worker.pool is not None and hands_back(worker.app):
            wrap_pool(worker.pool, worker.app.backend.store_now)


def install(app) -> None:
    app.steps["worker"].add(HandBackResults)
