"""Periodic jobs created at runtime fire on the running beat; a second beat stays idle."""

import subprocess
import time

import pytest

from harness.processes import Process, manage, wait_for
from records.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def two_beats(workers, platform_env, log_dir):
    beats = [Process(f"beat-{n}", manage("runbeat"), platform_env, log_dir) for n in (1, 2)]

    def roles_settled():
        logs = [beat.log() for beat in beats]
        return sum("is now the active beat" in log for log in logs) == 1 and any(
            "on standby" in log for log in logs
        )

    wait_for(roles_settled, 30, "one active beat and one on standby")
    yield beats
    for beat in beats:
        beat.stop()


def periodic(env, *args):
    result = subprocess.run(
        manage("periodic", *args), env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_job_created_at_runtime_fires_once_per_tick_and_stops_when_disabled(
    two_beats, platform_env
):
    key = ApiKey.objects.create(label="beat probe")
    periodic(
        platform_env,
        "set",
        "count-api-key",
        "--every",
        "1",
        "--task",
        "celery_tasks.api.usage.record_api_call",
        "--args",
        f"[{key.pk}]",
    )
    try:
        # Picked up without restarting beat (the scheduler polls for changes).
        wait_for(lambda: ApiKey.objects.get(pk=key.pk).calls >= 2, 30, "the job to fire")
        start_calls, start = ApiKey.objects.get(pk=key.pk).calls, time.monotonic()
        time.sleep(6)
        fired = ApiKey.objects.get(pk=key.pk).calls - start_calls
        elapsed = time.monotonic() - start
        # Every 1 s from one beat: about `elapsed` firings; two beats would double it.
        assert elapsed - 2 <= fired <= elapsed + 1, (fired, elapsed)

        periodic(platform_env, "disable", "count-api-key")
        time.sleep(7)  # beat notices within its 5 s loop
        settled = ApiKey.objects.get(pk=key.pk).calls
        time.sleep(4)
        assert ApiKey.objects.get(pk=key.pk).calls == settled
    finally:
        periodic(platform_env, "delete", "count-api-key")
