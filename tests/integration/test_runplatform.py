"""The README's run command starts redis, five workers, beat and Flower; Ctrl-C stops all."""

import signal

import redis

from tests.integration.processes import Process, free_port, manage, wait_for


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
        for name in ("cert", "green_door", "pqs", "api", "long_running", "beat", "flower", "redis"):
            assert f"| {name} started (pid=" in log, name
        wait_for(lambda: "is now the active beat" in platform.log(), 30, "beat to lead")
        assert redis.Redis.from_url(url).ping()
        assert (tmp_path / "redis" / "appendonlydir").exists()  # AOF on, as deployed
        assert (tmp_path / "flower-credentials").stat().st_mode & 0o777 == 0o600
    finally:
        platform.popen.send_signal(signal.SIGINT)  # Ctrl-C
        assert platform.popen.wait(90) is not None
    log = platform.log()
    assert log.count("Warm shutdown") == 5
    assert not platform.alive()
