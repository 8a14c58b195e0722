"""Acknowledgements that wait for the end of an event-loop turn (platform_core.broker.qos)
are never lost: a task that finished is never delivered again, whether the worker keeps
running or stops. A leftover entry in a worker's held list would be handed to another
worker when that worker's lease expires, and that task would run twice."""

import os
import signal
import time

from harness.processes import wait_for
from tests.reliability.conftest import HELD_LISTS, drill_executions, new_token, send


def unacked_entries(broker) -> tuple[int, int]:
    """(messages held under any worker's lease, entries in kombu's old unacked index)."""
    client = broker.client()
    held = sum(client.llen(key) for key in client.scan_iter(HELD_LISTS))
    return held, client.hlen("unacked")


def test_a_busy_worker_records_every_acknowledgement(broker, client, start_worker, record_figure):
    start_worker("cert", concurrency=2)
    broker.client().config_resetstat()
    token, count = new_token(), 300
    results = [send(client, "cert", "drills.record", token) for _ in range(count)]
    wait_for(lambda: len(drill_executions(broker, token)) == count, 60, "all tasks to run", 0.5)
    wait_for(lambda: unacked_entries(broker) == (0, 0), 5, "every delivery to be acknowledged")
    assert set(drill_executions(broker, token)) == {result.id for result in results}
    assert set(drill_executions(broker, token).values()) == {1}
    calls = {name: stats["calls"] for name, stats in broker.client().info("commandstats").items()}
    # The queue was busy: messages came through the fetch script, not one BRPOP each;
    # the script by its SHA, never its source.
    assert calls.get("cmdstat_evalsha", 0) > 0
    assert calls.get("cmdstat_eval", 0) == 0
    assert calls.get("cmdstat_brpop", 0) < count / 2
    record_figure(
        f"{count} tasks through one worker (c=2)",
        fetch_scripts=calls.get("cmdstat_evalsha", 0),
        brpops=calls.get("cmdstat_brpop", 0),
        left_unacked=0,
        duplicates=0,
    )


def test_a_warm_shutdown_leaves_nothing_to_deliver_again(
    broker, client, start_worker, record_figure
):
    worker = start_worker("cert", concurrency=2)
    token, count = new_token(), 6
    results = [send(client, "cert", "drills.record", token, 1.0) for _ in range(count)]
    wait_for(lambda: broker.client().llen("cert") <= count - 2, 10, "two tasks to start")
    time.sleep(0.3)
    # Warm shutdown, as systemd's KillMode=mixed does it: SIGTERM to the main process.
    os.kill(worker.popen.pid, signal.SIGTERM)
    worker.popen.wait(30)
    finished = drill_executions(broker, token)
    assert finished, "the tasks running at SIGTERM finish before the worker exits"
    # Finished tasks are acknowledged, reserved ones are back in the queue: nothing is
    # left for the redelivery sweep to hand out again later.
    assert unacked_entries(broker) == (0, 0)
    assert broker.client().llen("cert") == count - len(finished)
    start_worker("cert", concurrency=2)
    wait_for(lambda: len(drill_executions(broker, token)) == count, 30, "the rest to run", 0.5)
    executions = drill_executions(broker, token)
    assert executions == {result.id: 1 for result in results}
    record_figure(
        "warm shutdown with 2 tasks running, 4 queued",
        finished_before_exit=len(finished),
        executions=sum(executions.values()),
        duplicates=0,
    )
