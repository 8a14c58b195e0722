"""A task longer than the lease, running while the worker loses Redis and reconnects, runs
once: the worker's next channel renews the same lease (leases.process_worker_id), so the
old channel's records are not swept as a dead worker's; what it held but was not running
is handed back by the new channel and runs once too. Real redis-server, a real worker.

Found by the Molecule power-off drill (the broker's primary host lost): a 60 s task on the
surviving worker host started twice when each channel had its own lease."""

import time

from harness.processes import wait_for
from tests.reliability.conftest import drill_executions, new_token, send

SHORT_LEASE = {"PLATFORM_LEASE_SECONDS": "3", "PLATFORM_LEASE_SWEEP_SECONDS": "1"}
LONG_SECONDS = 10


def test_a_task_running_through_a_reconnect_runs_once(broker, client, start_worker):
    worker = start_worker(
        "cert", concurrency=1, extra_env={**SHORT_LEASE, "PLATFORM_SITE_TASK_TIME_LIMIT": "30"}
    )
    token = new_token()
    long = send(client, "cert", "drills.record", token, LONG_SECONDS)
    wait_for(lambda: "drills.record" in worker.log() and "received" in worker.log(), 20, "start")
    time.sleep(1)
    behind = [send(client, "cert", "drills.record", token, 0) for _ in range(3)]
    time.sleep(0.5)  # one of them reserved by the worker (prefetch 1), the rest queued
    broker.stop_cleanly()
    time.sleep(1)
    broker.start()
    expected = {long.id, *(result.id for result in behind)}
    wait_for(lambda: set(drill_executions(broker, token)) >= expected, 60, "every task to run")
    # Well past the lease and the sweep: a swept copy of the long task would have run by now.
    time.sleep(LONG_SECONDS)
    executions = drill_executions(broker, token)
    assert executions[long.id] == 1, executions
    assert all(executions[result.id] == 1 for result in behind), executions
    assert worker.alive()
