"""Leases, not clocks (platform_core.broker.leases): a task on a live worker is never handed
to another, however long it runs; a worker that stops renewing (paused, cut off) is
taken for dead, its messages run elsewhere, and it says so when it comes back."""

import json
import os
import signal
import time

from harness.processes import wait_for
from tests.reliability.conftest import drill_executions, new_token, send

# Short leases, so the tests see many lease periods and quick sweeps.
SHORT_LEASE = {"PLATFORM_LEASE_SECONDS": "3", "PLATFORM_LEASE_SWEEP_SECONDS": "1"}


def test_a_three_minute_task_on_a_live_worker_runs_once(
    broker, client, start_worker, record_figure
):
    long_limit = {**SHORT_LEASE, "PLATFORM_LONG_TASK_TIME_LIMIT": "400"}
    start_worker("long_running", name="runner", extra_env=long_limit)
    start_worker("long_running", name="sweeper", extra_env=long_limit)
    start_worker("cert", extra_env=SHORT_LEASE)  # a site worker sweeping too
    token, seconds = new_token(), 180
    result = send(client, "long_running", "drills.record", token, seconds)
    wait_for(lambda: drill_executions(broker, token), seconds + 60, "the long task", 1)
    time.sleep(5)  # several more sweeps: nothing comes back
    assert drill_executions(broker, token) == {result.id: 1}
    assert broker.client().llen("long_running") == 0
    record_figure(
        f"{seconds} s task, lease 3 s (60 lease periods), two other workers sweeping",
        executions=1,
        duplicates=0,
    )


def test_a_paused_worker_loses_its_lease_and_says_so(broker, client, start_worker, record_figure):
    paused = start_worker("cert", name="paused", extra_env=SHORT_LEASE)
    token = new_token()
    result = send(client, "cert", "drills.record", token, 2)
    wait_for(lambda: result.id in paused.log(), 10, "the pickup")
    os.killpg(paused.popen.pid, signal.SIGSTOP)  # the whole worker, as a frozen VM
    stopped_at = time.monotonic()
    other = start_worker("cert", name="other", extra_env=SHORT_LEASE)
    wait_for(lambda: result.id in other.log(), 30, "the task handed to the other worker")
    handed_over = time.monotonic() - stopped_at
    os.killpg(paused.popen.pid, signal.SIGCONT)
    wait_for(lambda: "was lost" in paused.log(), 15, "the paused worker to notice")
    time.sleep(4)  # the paused worker's own copy finishes too
    runs = drill_executions(broker, token)[result.id]
    # It goes on working under its lease, taken again.
    after = send(client, "cert", "drills.record", token, 0)
    wait_for(lambda: after.id in drill_executions(broker, token), 20, "the next task")
    assert drill_executions(broker, token)[after.id] == 1
    assert runs in (1, 2)  # at-least-once: the paused copy may finish as well
    record_figure(
        "worker paused (SIGSTOP) past its 3 s lease with a 2 s task, then resumed",
        handed_over_s=handed_over,
        executions=runs,
        duplicates=runs - 1,
    )


def test_messages_an_earlier_version_left_in_the_unacked_index_run_once(
    broker, client, start_worker, record_figure
):
    """The upgrade path: a delivery recorded by the previous version (kombu's unacked
    index, its worker gone) goes back to its queue once the window that version used
    has passed; one still inside it (its old worker may be running it) stays put."""
    from platform_core.config.queues import LEGACY_INDEXES
    from tests.strategies.envelopes import good_envelope

    token = new_token()
    old = broker.client()

    def left_behind(queue, age):
        envelope = good_envelope(queue, f"celery_tasks.{queue}.drills.record", args=(token, 0))
        tag = envelope["properties"]["delivery_tag"]
        index = LEGACY_INDEXES["long_running" if queue == "long_running" else "site"][0]
        # kombu's QoS.append: ZADD index tag time; HSET unacked tag [payload, exchange, key].
        old.zadd(f"{index}_index", {tag: time.time() - age})
        old.hset(index, tag, json.dumps([envelope, "", queue]))
        return envelope["headers"]["id"]

    site_window, long_window = LEGACY_INDEXES["site"][1], LEGACY_INDEXES["long_running"][1]
    stale = {left_behind("cert", site_window + 5), left_behind("long_running", long_window + 5)}
    recent = left_behind("cert", site_window - 60)
    start_worker("cert")
    start_worker("long_running")
    wait_for(lambda: len(drill_executions(broker, token)) == 2, 60, "the old deliveries", 0.5)
    time.sleep(12)  # one more sweep of the old indexes: nothing comes back
    assert drill_executions(broker, token) == dict.fromkeys(stale, 1)
    assert old.hlen("unacked_long_running") == 0
    assert old.hkeys("unacked") == [old.zrange("unacked_index", 0, -1)[0]]  # the recent one
    assert recent not in drill_executions(broker, token)
    record_figure(
        "deliveries left in the old unacked indexes by a previous version",
        executions_of_stale=2,
        recent_left_alone=1,
    )
