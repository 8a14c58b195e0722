"""The README's run command starts redis, five workers, beat and Flower; Ctrl-C stops all."""

import re
import signal

import redis

from harness.processes import Process, free_port, manage, wait_for
from platform_core.config.queues import QUEUES
from tests.integration.test_memory_sharing import smaps_kib

# make run forks every process from one preloaded parent (platform_core.processes.devfleet): a
# worker's main process holds ~17 MB of its ~76 MB privately (22 %); started on its own
# it holds all of it.
MAX_PRIVATE_FRACTION_OF_A_WORKER = 0.5


def test_runplatform_starts_everything_and_stops_with_a_warm_shutdown(
    platform_env, log_dir, tmp_path
):
    # A port where no redis runs: runplatform must start its own redis-server there.
    url = f"redis://127.0.0.1:{free_port()}/0"
    env = {**platform_env, "REDIS_URL": url, "PLATFORM_VAR_DIR": str(tmp_path)}
    platform = Process(
        "runplatform",
        manage("runplatform", "-c", "1", "--flower-port", str(free_port())),
        env,
        log_dir,
    )
    try:
        wait_for(lambda: platform.log().count(" ready.") >= 5, 90, "five workers", 0.5)
        log = platform.log()
        started = dict(re.findall(r"\| (\w+) started \(pid=(\d+)\)", log))
        assert set(started) == {*QUEUES, "flower", "redis"}, started
        wait_for(lambda: "is now the active beat" in platform.log(), 30, "beat to lead")
        for queue in QUEUES:
            memory = smaps_kib(int(started[queue]))
            private = memory["Private_Dirty"] + memory["Private_Clean"]
            print(f"{queue} worker: {private // 1024} MB private of {memory['Rss'] // 1024} MB")
            assert private <= MAX_PRIVATE_FRACTION_OF_A_WORKER * memory["Rss"], (
                f"the {queue} worker holds {private // 1024} of its {memory['Rss'] // 1024} MB "
                "privately: it no longer shares the dev fleet's preloaded pages"
            )
        assert redis.Redis.from_url(url).ping()
        assert (tmp_path / "redis" / "appendonlydir").exists()  # AOF on, as deployed
        assert (tmp_path / "flower-credentials").stat().st_mode & 0o777 == 0o600
    finally:
        platform.popen.send_signal(signal.SIGINT)  # Ctrl-C
        assert platform.popen.wait(90) is not None
    log = platform.log()
    assert log.count("Warm shutdown") == 5
    assert not platform.alive()
