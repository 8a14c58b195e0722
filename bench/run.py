"""One command, one machine, one private redis-server: the platform beside stock Celery,
Dramatiq and Huey, with no-op tasks. Prints a markdown table for docs/performance.md.

    make bench            (N=5000 by default; BENCH_N, BENCH_PICKUPS to change)
"""

import json
import os
import platform as host
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from platform_core.queues import WORKER_COMMANDS

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
N = int(os.environ.get("BENCH_N", "5000"))
PICKUPS = int(os.environ.get("BENCH_PICKUPS", "300"))
SITES = ("cert", "green_door", "pqs", "api")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Fleet:
    """Processes started in their own sessions, stopped together."""

    def __init__(self, env, logs):
        self.env, self.logs, self.procs = env, logs, []

    def start(self, name, argv, extra_env=None):
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs = []


def tree_memory_mb(pid):
    """RSS and PSS (KiB summed over the process and its descendants) in MB."""
    pids, stack = [], [pid]
    while stack:
        current = stack.pop()
        pids.append(current)
        try:
            stack += [
                int(c) for c in Path(f"/proc/{current}/task/{current}/children").read_text().split()
            ]
        except OSError:
            pass
    rss = pss = 0
    for current in pids:
        try:
            for line in Path(f"/proc/{current}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except OSError:
            pass
    return rss / 1024, pss / 1024


def producer(system, mode, n, env):
    out = subprocess.run(
        [PY, "-m", "bench.producer", system, mode, str(n)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{system} {mode}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def worker_argv(system, queue="cert", name=None):
    name = name or queue
    if system == "platform":
        return [PY, "manage.py", WORKER_COMMANDS[queue], "-n", f"{name}@%h"]
    if system == "celery":
        # The single-worker runs use stock defaults: the default queue ("celery").
        queues = ["-Q", queue] if name != "single" else []
        return [
            PY,
            "-m",
            "celery",
            "-A",
            "bench.systems.stock_celery",
            "worker",
            *queues,
            "-n",
            f"{name}@%h",
            "--loglevel",
            "WARNING",
        ]
    if system == "dramatiq":
        return [
            PY,
            "-m",
            "dramatiq",
            "bench.systems.dramatiq_app",
            "--processes",
            "2",
            "--threads",
            "8",
        ]
    if system == "huey":
        return [
            PY,
            "-m",
            "huey.bin.huey_consumer",
            "bench.systems.huey_app.huey",
            "-k",
            "process",
            "-w",
            "2",
        ]
    raise ValueError(system)


def wait_until_serving(system, env, timeout=120):
    """Until a pickup probe sent now is executed: the worker is really consuming."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = producer(system, "pickup", 1, env)
            if result["samples"]:
                return
        except RuntimeError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{system} worker did not start serving")


def measure_system(system, env, logs, client):
    fleet = Fleet(env, logs)
    figures = {}
    client.flushdb()
    figures.update(producer(system, "enqueue", 2000, env))  # no worker: enqueue only
    client.flushdb()
    started = fleet.start(f"{system}-worker", worker_argv(system, name="single"))
    try:
        wait_until_serving(system, env)
        time.sleep(2)
        rss, pss = tree_memory_mb(started.pid)
        figures.update(worker_rss_mb=rss, worker_pss_mb=pss)
        figures.update(producer(system, "pickup", PICKUPS, env))
        runs = [producer(system, "throughput", N, env) for _ in range(3)]
        figures["tasks_per_s"] = statistics.median(r["tasks_per_s"] for r in runs)
        figures["all_ran"] = all(r["ran"] == r["sent"] for r in runs)
        figures["throughput_runs"] = runs
    finally:
        fleet.stop()
    return figures


def measure_fleet(system, env, logs):
    """Idle memory of five workers + beat + Flower, and the time until all five answer ping."""
    fleet = Fleet(env, logs)
    procs = []
    started = time.monotonic()
    for queue in (*SITES, "long_running"):
        procs.append(fleet.start(f"{system}-fleet-{queue}", worker_argv(system, queue)))
    if system == "platform":
        procs.append(fleet.start("platform-beat", [PY, "manage.py", "runbeat"]))
        procs.append(
            fleet.start(
                "platform-flower", [PY, "manage.py", "runflower", "--port", str(free_port())]
            )
        )
        app = "sites.cert.celery_app:cert_app"
    else:
        procs.append(
            fleet.start(
                "celery-beat",
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "bench.systems.stock_celery",
                    "beat",
                    "-s",
                    str(logs / "celerybeat-schedule"),
                ],
            )
        )
        procs.append(
            fleet.start(
                "celery-flower",
                [
                    PY,
                    "-m",
                    "celery",
                    "-A",
                    "bench.systems.stock_celery",
                    "flower",
                    f"--port={free_port()}",
                    "--address=127.0.0.1",
                ],
            )
        )
        app = "bench.systems.stock_celery"
    try:
        ping_s = None
        while time.monotonic() - started < 120:
            out = subprocess.run(
                [PY, "-m", "celery", "-A", app, "inspect", "ping", "--timeout", "1"],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
            )
            if out.stdout.count("pong") >= 5:
                ping_s = time.monotonic() - started
                break
        time.sleep(5)  # idle
        totals = [tree_memory_mb(p.pid) for p in procs]
        return {
            "start_to_5_pings_s": ping_s,
            "fleet_rss_mb": sum(t[0] for t in totals),
            "fleet_pss_mb": sum(t[1] for t in totals),
        }
    finally:
        fleet.stop()


def main():
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
        ],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis.from_url(url)
    for _ in range(50):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.1)
    subprocess.run(
        [PY, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}"},
    )
    env = {
        **os.environ,
        "BENCH_REDIS_URL": url,
        "REDIS_URL": url,
        "USE_CELERY": "1",
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "bench-only",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "PYTHONPATH": str(ROOT),
        "FLOWER_BASIC_AUTH": "bench:bench-password",
        "PYTHONUNBUFFERED": "1",
    }
    results = {}
    try:
        for system in ("platform", "celery", "dramatiq", "huey"):
            print(f"measuring {system} …", file=sys.stderr)
            results[system] = measure_system(system, env, workdir, client)
        for system in ("platform", "celery"):
            print(f"measuring the {system} fleet …", file=sys.stderr)
            results[system].update(measure_fleet(system, env, workdir))
    finally:
        server.terminate()
        server.wait()
    (workdir / "results.json").write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\nraw figures: {workdir / 'results.json'}", file=sys.stderr)
    shutil.rmtree(workdir / "appendonlydir", ignore_errors=True)


def print_table(results):
    stock = results["celery"]
    print(
        f"Machine: {host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}, "
        f"N={N} no-op tasks, {PICKUPS} pickups\n"
    )
    print(
        "| system | enqueue µs | tasks/s (median of 3) | pickup p50 / p99 ms"
        " | idle worker RSS / PSS MB | every task ran |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['enqueue_us']:.0f} | {r['tasks_per_s']:.0f} | "
            f"{r['p50_ms']:.1f} / {r['p99_ms']:.1f} | "
            f"{r['worker_rss_mb']:.0f} / {r['worker_pss_mb']:.0f} | "
            f"{'yes' if r['all_ran'] else 'NO'} |"
        )
    p = results["platform"]
    print(
        f"\nplatform vs stock Celery: enqueue x{p['enqueue_us'] / stock['enqueue_us']:.2f}, "
        f"throughput x{p['tasks_per_s'] / stock['tasks_per_s']:.2f}"
    )
    print("\n| fleet (5 workers + beat + Flower) | idle RSS MB | idle PSS MB | start → 5 pings s |")
    print("|---|---:|---:|---:|")
    for name in ("platform", "celery"):
        r = results[name]
        print(
            f"| {name} | {r['fleet_rss_mb']:.0f} | {r['fleet_pss_mb']:.0f} | "
            f"{r['start_to_5_pings_s'] or float('nan'):.1f} |"
        )


if __name__ == "__main__":
    main()
