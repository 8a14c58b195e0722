"""Promise 1: a worker killed mid-task loses nothing; a poison task stops after a few tries."""

import os
import signal
import time

from tests.integration.processes import wait_for
from tests.reliability.conftest import (
    drill_executions,
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
    (15 + 5 s); the waiting countdown task runs at its due time, all exactly once."""
    first = start_worker("cert", name="first")
    token = new_token()
    due_in = 30
    waiting = send(client, "cert", "drills.record", token, 0, countdown=due_in)
    sent_at = time.time()
    running = send(client, "cert", "drills.record", token, 3)  # under the 5 s test limit
    wait_for(lambda: running.id in first.log(), 10, "the running task's pickup")
    assert waiting.id in first.log()  # held by the first worker, waiting for its ETA
    second = start_worker("cert", name="second")  # another worker, alive throughout
    killed_at = time.monotonic()
    first.stop(signal.SIGKILL)  # main process and pool: the whole worker is gone
    wait_for(lambda: running.id in second.log(), 60, "the running task back on a worker")
    recovery = time.monotonic() - killed_at
    wait_for(lambda: len(drill_executions(broker, token)) == 2, 60, "both tasks to run")
    executions = drill_executions(broker, token)
    assert executions == {running.id: 1, waiting.id: 1}  # nothing lost, nothing twice
    assert waiting.date_done.timestamp() >= sent_at + due_in - 1  # not before it was due
    record_figure(
        "whole worker SIGKILLed holding a running and a countdown task",
        lost=0,
        duplicates=0,
        back_on_a_worker_s=recovery,
        countdown_ran_after_due_s=waiting.date_done.timestamp() - sent_at - due_in,
    )
    assert recovery <= 30


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
    assert int(broker.client().hget("platform:rejected", "cert:too-many-attempts")) == 1
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
