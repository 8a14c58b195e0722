"""Promise 2: Redis restarted (clean stop, kill -9) with tasks queued and tasks waiting
on a countdown: none is missing afterwards, and workers reconnect by themselves."""

import time

import pytest

from harness.processes import wait_for
from platform_core.config.environment import DEFAULTS
from tests.reliability.conftest import drill_executions, new_token, send

QUEUED, DELAYED = 30, 5


@pytest.mark.parametrize("how", ["clean stop", "kill -9"])
def test_no_task_lost_across_a_redis_restart(broker, client, start_worker, record_figure, how):
    # Tasks (and their writes) must outlast the outage: a 30 s hard limit here.
    worker = start_worker("cert", extra_env={"PLATFORM_SITE_TASK_TIME_LIMIT": "30"})
    token = new_token()
    # Slow enough that most are still queued when Redis goes down.
    queued = [send(client, "cert", "drills.record", token, 0.2) for _ in range(QUEUED)]
    delayed = [send(client, "cert", "drills.record", token, 0, countdown=8) for _ in range(DELAYED)]
    expected = {result.id for result in queued + delayed}
    time.sleep(1.5)  # > appendfsync everysec: what was written is on disk
    done_before = len(drill_executions(broker, token))
    assert done_before < QUEUED, "the restart should find tasks still queued"

    restarted_at = time.monotonic()
    broker.stop_cleanly() if how == "clean stop" else broker.kill_9()
    time.sleep(2)
    broker.start()

    wait_for(
        lambda: set(drill_executions(broker, token)) >= expected,
        DEFAULTS.lease_seconds + DEFAULTS.lease_sweep_seconds + 30,
        "every task to run after the restart",
        interval=0.5,
    )
    # A task running when the connection dropped cannot be acknowledged on it; it is
    # handed out again when the worker's old lease expires (at-least-once). Wait for
    # that sweep before counting, so a duplicate shows up here rather than later.
    time.sleep(DEFAULTS.lease_seconds + DEFAULTS.lease_sweep_seconds + 3)
    executions = drill_executions(broker, token)
    lost = len(expected - set(executions))
    duplicates = sum(count - 1 for count in executions.values())
    record_figure(
        f"Redis {how} with {QUEUED} queued and {DELAYED} countdown tasks",
        lost=lost,
        duplicates=duplicates,
        seconds=time.monotonic() - restarted_at,
        done_before_restart=done_before,
    )
    assert lost == 0
    assert duplicates == 0  # the running task's late ack reached Redis on the new connection
    assert worker.alive()  # reconnected by itself
    assert "Connected to redis" in worker.log().split("Connection to broker lost")[-1]
