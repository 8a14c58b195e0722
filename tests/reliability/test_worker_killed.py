"""Promise 1: a worker killed mid-task loses nothing; a poison task stops after a few tries."""

import os
import signal
import time

from tests.integration.processes import wait_for
from tests.reliability.conftest import (
    SITE_WINDOW_SECONDS,
    SWEEP_SECONDS,
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
    first = start_worker("cert", name="first")
    token = new_token()
    results = [send(client, "cert", "drills.record", token, 2) for _ in range(4)]
    wait_for(lambda: " received" in first.log(), 10, "pickup")
    time.sleep(0.5)
    killed_at = time.monotonic()
    first.stop(signal.SIGKILL)  # main process and pool: the whole worker is gone
    start_worker("cert", name="second")

    expected = {result.id for result in results}
    wait_for(
        lambda: set(drill_executions(broker, token)) >= expected,
        SITE_WINDOW_SECONDS + SWEEP_SECONDS + 4 * 2 + 15,
        "every task to run",
    )
    recovery = time.monotonic() - killed_at
    executions = drill_executions(broker, token)
    assert set(executions) == expected  # nothing lost
    assert all(count == 1 for count in executions.values()), executions  # nothing twice
    record_figure(
        "whole worker SIGKILLed with a task running", lost=0, duplicates=0, seconds=recovery
    )
    assert recovery <= SITE_WINDOW_SECONDS + SWEEP_SECONDS + 4 * 2 + 5


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
