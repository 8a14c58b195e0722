"""A global rate limit (broker.rate_limits) holds across workers: 3 workers, a limit of
20/s, 2000 tasks → the rate over every 10 s window within ±10 % of the limit, none lost,
none twice; a limit changed at runtime (manage.py ratelimit) applies within 5 s."""

import subprocess
import time

from harness.processes import manage, wait_for
from tests.reliability.conftest import drill_executions, drill_started_at, new_token, send

TASK = "drills.record_limited"
LIMIT = 20  # its global_rate_limit, per second
TASKS = 2000
WINDOW = 10.0
TOLERANCE = 0.10


def _rates(starts: list[float], window: float) -> list[int]:
    """Tasks started in every window [t, t + window), t stepping 0.5 s over the run."""
    first, last = starts[0], starts[-1]
    counts, t = [], first
    while t + window <= last:
        counts.append(sum(1 for s in starts if t <= s < t + window))
        t += 0.5
    return counts


def test_a_global_limit_holds_across_three_workers(
    broker, start_worker, platform_client, platform_env_short, record_figure
):
    for n in range(3):
        start_worker("cert", name=f"limited-{n}", concurrency=2)
    token = new_token()
    sent_at = time.time()
    for _ in range(TASKS):
        send(platform_client, "cert", TASK, token)
    wait_for(
        lambda: sum(drill_executions(broker, token).values()) >= TASKS,
        TASKS / LIMIT + 60,
        f"{TASKS} rate-limited tasks to run",
    )
    runs = drill_executions(broker, token)
    starts = sorted(drill_started_at(broker, token).values())
    counts = _rates(starts, WINDOW)
    expected = LIMIT * WINDOW
    worst = max(abs(count - expected) / expected for count in counts)
    record_figure(
        f"global limit {LIMIT}/s, 3 workers x 2 processes, {TASKS} tasks",
        lost=TASKS - len(runs),
        twice=sum(1 for count in runs.values() if count > 1),
        seconds=starts[-1] - starts[0],
        all_ran_after_s=time.time() - sent_at,
        min_per_10s=min(counts),
        max_per_10s=max(counts),
        worst_deviation_pct=100 * worst,
    )
    assert len(runs) == TASKS
    assert all(count == 1 for count in runs.values())
    assert worst <= TOLERANCE, counts

    # Changed at runtime: 10/s, then 40/s while tasks wait.
    token = new_token()
    env = {**platform_env_short, "DJANGO_SETTINGS_MODULE": "sites.cert.settings"}

    def set_limit(rate):
        subprocess.run(
            manage("ratelimit", "set", f"celery_tasks.cert.{TASK}", rate),
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )

    set_limit("10/s")
    time.sleep(3)  # every worker has read it
    for _ in range(600):
        send(platform_client, "cert", TASK, token)
    time.sleep(10)
    set_limit("40/s")
    changed_at = time.time()
    wait_for(lambda: sum(drill_executions(broker, token).values()) >= 600, 90, "600 tasks")
    starts = sorted(drill_started_at(broker, token).values())
    # The first second (from the change on) at which the last second ran ≥ 90 % of 40.
    took = next(
        t - changed_at
        for t in (changed_at + step / 10 for step in range(0, 300))
        if sum(1 for s in starts if t - 1 <= s < t) >= 0.9 * 40
    )
    record_figure("limit changed at runtime 10/s -> 40/s", applied_within_s=took)
    assert took <= 5
