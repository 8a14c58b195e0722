"""Promise 1: a worker killed mid-task loses nothing; a poison task stops after a few tries."""

import os
import signal
import time

from harness.processes import wait_for
from platform_core.broker import keys
from tests.reliability.conftest import (
    drill_executions,
    drill_started_at,
    new_token,
    pool_children,
    send,
)


def test_pool_process_killed_mid_task_is_rerun_at_once(broker, client, start_worker, record_figure):
    worker = start_worker("cert")
    token = new_token()
    result = send(client, "cert", "drills.record", token, 3)
    wait_for(lambda: "drills.record" in worker.log() and " received" in worker.log(), 10, "pickup")
    time.sleep(1)  # mid-task
    (child,) = pool_children(worker.popen.pid)
    killed_at = time.monotonic()
    os.kill(child, signal.SIGKILL)  # as the OOM killer does

    wait_for(lambda: drill_executions(broker, token), 30, "the task to run again")
    recovery = time.monotonic() - killed_at
    assert drill_executions(broker, token) == {result.id: 1}  # once, to completion
    assert worker.alive()
    record_figure("pool process SIGKILLed mid-task", lost=0, duplicates=0, seconds=recovery)
    assert recovery < 3 + 5  # the task's own 3 s plus a pool restart


def test_whole_worker_killed_its_tasks_run_on_another_worker(
    broker, client, start_worker, record_figure
):
    """Production lease defaults: a dead worker's messages are back within lease + sweep
    (15 + 5 s); the countdown task (parked in the delayed set, not held by the worker)
    runs at its due time; all exactly once."""
    # Prefetch 2 on one process: one task running, one reserved behind it.
    first = start_worker("cert", name="first", extra_args=("--", "--prefetch-multiplier", "2"))
    token = new_token()
    due_in = 30
    sent_at = time.time()
    waiting = send(client, "cert", "drills.record", token, 0, countdown=due_in)
    # 3 s: under the test's soft time limit (4 s).
    running = send(client, "cert", "drills.record", token, 3)
    reserved = send(client, "cert", "drills.record", token, 0)
    wait_for(lambda: running.id in first.log(), 10, "the running task's pickup")
    wait_for(lambda: reserved.id in first.log(), 10, "the reserved task's pickup")
    assert waiting.id in first.log()  # taken by the first worker, parked by it
    # Reserved: received, not run yet (a CI run once saw the reserved task received
    # after the running one had finished; the log says when each was received).
    assert not drill_executions(broker, token), first.log()[-3000:]
    second = start_worker("cert", name="second")  # another worker, alive throughout
    killed_at = time.monotonic()
    first.stop(signal.SIGKILL)  # main process and pool: the whole worker is gone
    wait_for(
        lambda: running.id in second.log() and reserved.id in second.log(),
        60,
        "the running and reserved tasks back on a worker",
    )
    recovery = time.monotonic() - killed_at
    wait_for(lambda: len(drill_executions(broker, token)) == 3, 60, "all three tasks to run")
    time.sleep(2)
    executions = drill_executions(broker, token)
    # Nothing lost, nothing twice.
    assert executions == {running.id: 1, reserved.id: 1, waiting.id: 1}
    late = drill_started_at(broker, token)[waiting.id] - (sent_at + due_in)
    record_figure(
        "whole worker SIGKILLed holding a running, a reserved and a countdown task",
        lost=0,
        duplicates=0,
        back_on_a_worker_s=recovery,
        countdown_late_ms=round(late * 1000),
    )
    assert recovery <= 30
    assert 0 <= late <= 1


def test_task_that_kills_its_worker_every_time_is_failed_after_three_attempts(
    broker, client, start_worker, record_figure
):
    worker = start_worker("cert")
    poison = send(client, "cert", "drills.kill_worker")
    started = time.monotonic()
    wait_for(lambda: poison.state == "FAILURE", 60, "the poison task to be given up")
    assert "TooManyAttempts" in repr(poison.result) or "gave up" in str(poison.result)
    assert worker.log().count("celery_tasks.cert.drills.kill_worker") >= 4  # 3 tries + refusal
    assert "Gave up on celery_tasks.cert.drills.kill_worker" in worker.log()
    assert int(broker.client().hget(keys.Room("cert").rejected, "too-many-attempts")) == 1
    # The worker lives on and serves the next task.
    token = new_token()
    good = send(client, "cert", "drills.record", token, 0)
    assert good.get(timeout=20) == 1
    record_figure(
        "task that kills its worker every time",
        lost=0,
        duplicates=0,
        seconds=time.monotonic() - started,
        note="3 attempts, then FAILURE",
    )
