"""Promise 4: a long_running task that outlives the site queues' redelivery window runs
exactly once, while site workers sweep their own unacked index every 10 s."""

import time

from tests.integration.processes import wait_for
from tests.reliability.conftest import SITE_WINDOW_SECONDS, drill_executions, new_token, send


def test_long_task_outliving_the_site_window_runs_once(broker, client, start_worker, record_figure):
    start_worker("cert")  # sweeps the site index with a 20 s window
    start_worker("long_running")
    token = new_token()
    seconds = SITE_WINDOW_SECONDS + 15
    result = send(client, "long_running", "drills.record", token, seconds)
    wait_for(lambda: drill_executions(broker, token), seconds + 30, "the long task to finish", 1)
    time.sleep(12)  # one more sweep: nothing comes back
    executions = drill_executions(broker, token)
    assert executions == {result.id: 1}
    assert broker.client().llen("long_running") == 0
    record_figure(
        f"long_running task of {seconds} s (site window {SITE_WINDOW_SECONDS} s)",
        executions=sum(executions.values()),
        duplicates=0,
    )
