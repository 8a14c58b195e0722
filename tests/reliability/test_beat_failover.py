"""Promise 5: two beats, each periodic task sent once per tick; kill the active one and
the standby takes over within the lock's TTL; schedules stay editable in the database."""

import re
import signal
import subprocess
import time

import pytest

from harness.processes import Process, manage, wait_for
from tests.reliability.conftest import drill_executions, new_token

LOCK_TTL = 6  # PLATFORM_BEAT_LOCK_TTL for the test; production default 30
EVERY = 2


def _periodic(env, *args):
    result = subprocess.run(
        manage("periodic", *args), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def _fired_during(broker, token, seconds):
    before = len(drill_executions(broker, token))
    time.sleep(seconds)
    return len(drill_executions(broker, token)) - before


@pytest.fixture
def beats(platform_env_short, tmp_path):
    env = {**platform_env_short, "PLATFORM_BEAT_LOCK_TTL": str(LOCK_TTL)}
    started = [Process(f"beat-{n}", manage("runbeat"), env, tmp_path) for n in (1, 2)]
    wait_for(
        lambda: (
            sum("is now the active beat" in b.log() for b in started) == 1
            and any("on standby" in b.log() for b in started)
        ),
        30,
        "one active beat and one standby",
    )
    yield env, started
    for beat in started:
        beat.stop()


def test_standby_takes_over_and_no_tick_is_sent_twice(broker, start_worker, beats, record_figure):
    env, (first, second) = beats
    start_worker("cert")
    token = new_token()
    _periodic(
        env,
        "set",
        "drill",
        "--every",
        str(EVERY),
        "--task",
        "celery_tasks.cert.drills.record",
        "--args",
        f'["{token}", 0]',
    )
    wait_for(lambda: len(drill_executions(broker, token)) >= 2, 30, "the job to fire")

    steady = _fired_during(broker, token, 10)
    assert 10 / EVERY - 1 <= steady <= 10 / EVERY + 1, steady  # two beats, one sender

    active, standby = (
        (first, second) if "is now the active beat" in first.log() else (second, first)
    )
    killed_at = time.monotonic()
    active.stop(signal.SIGKILL)
    wait_for(lambda: "is now the active beat" in standby.log(), LOCK_TTL * 3, "the takeover", 0.2)
    takeover = time.monotonic() - killed_at
    assert takeover <= LOCK_TTL + LOCK_TTL / 3 + 2

    after = _fired_during(broker, token, 10)
    assert 10 / EVERY - 1 <= after <= 10 / EVERY + 1, after  # no catch-up burst, no doubles

    # Still editable at runtime: the new leader follows a change made in the database.
    _periodic(
        env,
        "set",
        "drill",
        "--every",
        "1",
        "--task",
        "celery_tasks.cert.drills.record",
        "--args",
        f'["{token}", 0]',
    )
    time.sleep(7)  # beat notices within its 5 s loop
    faster = _fired_during(broker, token, 10)
    assert faster >= 10 - 2, faster
    record_figure(
        "active beat SIGKILLed, standby takes over",
        takeover_seconds=takeover,
        lock_ttl=LOCK_TTL,
        per_10s_before=steady,
        per_10s_after=after,
        per_10s_after_edit=faster,
    )
    _periodic(env, "delete", "drill")
    assert re.search(r"beat \S+ on standby", standby.log())
