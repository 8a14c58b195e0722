"""Starting and stopping the real processes integration tests talk to."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Process:
    """A child process with its output in a log file the test can read."""

    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout: float = 30):
        if self.alive():
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        self._log.close()


def json_output(argv: list[str], env: dict, timeout: float = 120) -> dict:
    """Run ``argv`` from the project root; its last stdout line, as JSON (fails with its
    stderr when it fails)."""
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def manage(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "manage.py"), *args]


class RedisServer:
    """A private redis-server on loopback, persisted as deployed (AOF everysec,
    noeviction) unless ``appendonly=False``; it can be stopped cleanly, killed -9 and
    started again on the same data."""

    def __init__(self, directory, port, appendonly=True, clock_skew_seconds=0, extra_args=()):
        self.directory, self.port, self.appendonly = directory, port, appendonly
        # A clock this far ahead (or behind) of the host's, through datefudge.
        self.clock_skew_seconds = clock_skew_seconds
        self.extra_args = tuple(extra_args)
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process = None

    def start(self):
        skew = []
        if self.clock_skew_seconds:
            skew = ["datefudge", f"@{int(time.time() + self.clock_skew_seconds)}"]
        self.process = subprocess.Popen(
            [
                *skew,
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for(self.ping, 10, "redis-server to start")

    def ping(self):
        try:
            return redis.Redis.from_url(self.url, socket_timeout=1).ping()
        except redis.RedisError:
            return False

    def stop_cleanly(self):
        self.process.send_signal(signal.SIGTERM)  # AOF is flushed and fsync'd
        self.process.wait(30)

    def kill_9(self):
        self.process.kill()
        self.process.wait(30)

    def client(self):
        return redis.Redis.from_url(self.url)
