"""Delays held in Redis (platform_core.broker.delays), on real workers and a real Redis with
AOF: a far ETA from a plain Celery client is parked by the worker and runs once when
due; 1000 tasks with countdowns spread over two minutes run exactly once, none early,
on time, through a worker restart and two Redis restarts (clean and kill -9)."""

import random
import time

from harness.processes import wait_for
from platform_core.broker import keys
from platform_core.config.environment import DEFAULTS
from tests.reliability.conftest import drill_executions, drill_started_at, new_token, send

# Tasks (and their writes) must outlast a Redis restart: a 30 s hard limit here.
PATIENT = {"PLATFORM_SITE_TASK_TIME_LIMIT": "30"}


def test_a_far_eta_from_a_plain_client_is_parked_by_the_worker_and_runs_once_when_due(
    broker, client, start_worker, record_figure
):
    worker = start_worker("cert", extra_env=PATIENT)
    token, countdown = new_token(), 8
    sent_at = time.time()
    result = send(client, "cert", "drills.record", token, 0, countdown=countdown)
    wait_for(lambda: "parked in the delayed set" in worker.log(), 10, "the worker to park it")
    assert broker.client().zcard(keys.delayed("cert")) == 1
    wait_for(lambda: drill_executions(broker, token), countdown + 10, "the task to run", 0.1)
    late = drill_started_at(broker, token)[result.id] - (sent_at + countdown)
    time.sleep(2)
    assert drill_executions(broker, token) == {result.id: 1}
    assert 0 <= late <= 1
    record_figure("plain client, countdown 8 s, parked by the worker", late_ms=round(late * 1000))


TASKS, SPREAD = 1000, 120
# When each fault happens, in seconds after the last task was sent.
WORKER_RESTART_AT, CLEAN_RESTART_AT, KILL_9_AT = 25, 50, 80
REDIS_DOWN_SECONDS = 2
# Tasks due this long after a fault began count as "due during a fault": they wait for
# Redis to come back and the workers to reconnect, so their lateness is reported apart.
FAULT_SHADOW_SECONDS = 10


def test_a_thousand_delayed_tasks_run_once_on_time_across_restarts(
    broker, client, platform_client, start_worker, record_figure
):
    workers = [start_worker("cert", name=name, concurrency=2, extra_env=PATIENT) for name in "ab"]
    token, rng = new_token(), random.Random(11)
    due = {}
    for n in range(TASKS):
        # Half through the platform's producer (parked as sent), half through a plain
        # Celery client (parked by the worker that takes them).
        producer = platform_client if n % 2 else client
        countdown = rng.uniform(0, SPREAD)
        sent_at = time.time()
        due[send(producer, "cert", "drills.record", token, 0, countdown=countdown).id] = (
            sent_at + countdown
        )
    started, faults = time.time(), []

    def at(offset):
        time.sleep(max(0.0, started + offset - time.time()))
        return time.time()

    began = at(WORKER_RESTART_AT)
    workers[0].stop()  # warm shutdown: what it holds goes back
    workers[0] = start_worker("cert", name="a-again", concurrency=2, extra_env=PATIENT)
    faults.append(("worker restart", began, began))  # the other worker is up throughout
    for offset, how in ((CLEAN_RESTART_AT, "clean stop"), (KILL_9_AT, "kill -9")):
        began = at(offset)
        broker.stop_cleanly() if how == "clean stop" else broker.kill_9()
        time.sleep(REDIS_DOWN_SECONDS)
        broker.start()
        faults.append((f"Redis {how}", began, time.time()))

    wait_for(
        lambda: len(drill_executions(broker, token)) >= TASKS,
        SPREAD + 60,
        "every delayed task to run",
        interval=1,
    )
    # A task running when a connection dropped is acknowledged late or handed out again
    # when its worker's old lease expires: wait for that sweep before counting.
    time.sleep(DEFAULTS.lease_seconds + DEFAULTS.lease_sweep_seconds + 3)
    executions, started_at = drill_executions(broker, token), drill_started_at(broker, token)
    lost = len(set(due) - set(executions))
    duplicates = sum(count - 1 for count in executions.values())
    lateness = {task_id: started_at[task_id] - due[task_id] for task_id in started_at}
    early = [late for late in lateness.values() if late < 0]
    calm = dict(lateness)
    for name, began, ended in faults:
        shadowed = [t for t in lateness if 0 <= due[t] - began <= FAULT_SHADOW_SECONDS]
        for task_id in shadowed:
            calm.pop(task_id, None)
        record_figure(
            f"delayed tasks due within {FAULT_SHADOW_SECONDS} s of a {name}",
            tasks=len(shadowed),
            max_late_ms=milliseconds(max(lateness[t] for t in shadowed)),
            # Once Redis was back (or the fault over): the reconnection's share.
            max_late_after_recovery_ms=milliseconds(
                max(started_at[t] - max(due[t], ended) for t in shadowed)
            ),
        )
    everything, outside = sorted(lateness.values()), sorted(calm.values())
    p99_outside = percentile(outside, 99)
    record_figure(
        f"{TASKS} tasks, countdowns 0-{SPREAD} s, worker restart + Redis clean stop + "
        "Redis kill -9",
        lost=lost,
        duplicates=duplicates,
        early=len(early),
        p50_late_ms=milliseconds(percentile(everything, 50)),
        p99_late_ms=milliseconds(percentile(everything, 99)),
        max_late_ms=milliseconds(everything[-1]),
        p99_late_outside_faults_ms=milliseconds(p99_outside),
        max_late_outside_faults_ms=milliseconds(outside[-1]),
    )
    assert lost == 0
    assert duplicates == 0
    assert not early, f"{len(early)} ran before they were due, by up to {-min(early):.3f} s"
    assert p99_outside <= 1.0
    assert all(worker.alive() for worker in workers)
    assert broker.client().zcard(keys.delayed("cert")) == 0


def percentile(ordered: list[float], pct: int) -> float:
    return ordered[max(0, -(-len(ordered) * pct // 100) - 1)]


def milliseconds(seconds: float) -> int:
    return round(seconds * 1000)
