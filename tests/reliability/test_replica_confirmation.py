"""With PLATFORM_BROKER_MIN_REPLICAS=1, a worker runs a fetched message only once a
replica holds the fetch (WAIT after the fetch, same connection): with its replica
stopped, the worker runs nothing and hands what it took back; once the replica answers,
each message runs exactly once. Real redis-server primary and replica, a real worker."""

import os
import signal
import time

from harness.processes import RedisServer, free_port, wait_for
from tests.reliability.conftest import drill_executions, new_token, send

TASKS = 5


def test_a_fetch_no_replica_confirms_is_handed_back_not_run(broker, client, start_worker, tmp_path):
    primary = broker.client()
    primary.config_set("repl-diskless-sync-delay", 0)
    replica = RedisServer(
        tmp_path / "replica", free_port(), extra_args=("--replicaof", "127.0.0.1", str(broker.port))
    )
    replica.directory.mkdir()
    replica.start()
    try:
        wait_for(lambda: primary.execute_command("WAIT", 1, 100) == 1, 20, "the replica to sync")
        token = new_token()
        expected = {send(client, "cert", "drills.record", token, 0).id for _ in range(TASKS)}
        os.kill(replica.process.pid, signal.SIGSTOP)
        worker = start_worker(
            "cert",
            extra_env={
                "PLATFORM_BROKER_MIN_REPLICAS": "1",
                "PLATFORM_BROKER_REPLICA_TIMEOUT_MS": "200",
            },
        )
        wait_for(lambda: "handed back, not run" in worker.log(), 20, "an unconfirmed fetch")
        time.sleep(2)
        assert drill_executions(broker, token) == {}, "ran a fetch no replica held"

        os.kill(replica.process.pid, signal.SIGCONT)
        wait_for(lambda: set(drill_executions(broker, token)) == expected, 30, "every task to run")
        time.sleep(2)
        assert all(count == 1 for count in drill_executions(broker, token).values())
        assert worker.alive()
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
        replica.kill_9()
