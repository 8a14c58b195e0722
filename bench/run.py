"""One command, one machine, one private redis-server: the platform beside stock Celery,
Dramatiq and Huey, with no-op tasks. Prints a markdown table for docs/performance.md.

    make bench            (N=5000 by default; BENCH_N, BENCH_PICKUPS to change)
"""

import json
import os
import platform as host
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.processes import RedisServer, free_port
from platform_core.config.queues import QUEUES, WORKER_COMMANDS

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
N = int(os.environ.get("BENCH_N", "5000"))
PICKUPS = int(os.environ.get("BENCH_PICKUPS", "300"))
FLOOD = int(os.environ.get("BENCH_FLOOD", "20000"))  # tasks per other queue (isolation)
LOAD = int(os.environ.get("BENCH_LOAD", "5000"))  # tasks per queue before "after load" memory
SYSTEMS = ("platform", "celery", "dramatiq", "huey")
# The platform's no-op and pickup tasks: only the cert workers started here load them.
PLATFORM_TASKS = "bench.systems.platform_tasks"
MIN_FLOODED_SAMPLES = 100  # fewer pickups while flooded: no isolation figure (raise BENCH_FLOOD)


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


def process_tree(pid):
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
    return pids


def tree_cpu_seconds(pid):
    """CPU time (user + system) of a process, its live descendants and its reaped ones."""
    ticks = 0
    for current in process_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        if current == pid:
            ticks += int(fields[13]) + int(fields[14])  # children it has reaped
    return ticks / os.sysconf("SC_CLK_TCK")


def smaps_rollup_kib(pid):
    fields = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.endswith("kB"):
                name, value, _ = line.split()
                fields[name.rstrip(":")] = int(value)
    except OSError:
        pass
    return fields


def tree_memory_mb(pid):
    """RSS and PSS (KiB summed over the process and its descendants) in MB."""
    rollups = [smaps_rollup_kib(current) for current in process_tree(pid)]
    return sum(r.get("Rss", 0) for r in rollups) / 1024, sum(
        r.get("Pss", 0) for r in rollups
    ) / 1024


def children_of(pid):
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def memory_by_kind(root, worker_parents, beat, flower):
    """PSS (MB) and process count per kind over ``root``'s whole tree: worker parents,
    their pool children, beat, Flower (with anything they start), and the rest
    (supervisors: the dev fleet's preloaded parent and honcho's per-process readers)."""
    kinds = {pid: "worker parent" for pid in worker_parents}
    for parent in worker_parents:
        kinds.update((child, "pool child") for child in process_tree(parent) if child != parent)
    for kind, pid in (("beat", beat), ("flower", flower)):
        if pid:  # beat may be a child of a worker (make run): it counts as beat
            kinds.update((current, kind) for current in process_tree(pid))
    figures = {}
    for pid in [p for r in root for p in process_tree(r)]:
        kind = kinds.get(pid, "supervisor")
        pss, count = figures.get(kind, (0.0, 0))
        figures[kind] = (pss + smaps_rollup_kib(pid).get("Pss", 0) / 1024, count + 1)
    return {kind: {"pss_mb": pss, "processes": count} for kind, (pss, count) in figures.items()}


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
        argv = [PY, "manage.py", WORKER_COMMANDS[queue], "-n", f"{name}@%h"]
        # Everything after runworker's `--` goes to `celery worker`.
        return [*argv, "--", "--include", PLATFORM_TASKS] if queue == "cert" else argv
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


def measure_system(system, env, logs, client, redis_pid):
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
        # CPU per task (worker tree, Redis) over the three runs: on 2 shared cores the
        # sum of what every process spends per task bounds the throughput.
        cpu_before = tree_cpu_seconds(started.pid), tree_cpu_seconds(redis_pid)
        client.config_resetstat()
        runs = [producer(system, "throughput", N, env) for _ in range(3)]
        ran = sum(r["ran"] for r in runs) or 1
        # Every command Redis ran over the runs, producer and result writes included.
        calls = {name[8:]: stats["calls"] for name, stats in client.info("commandstats").items()}
        figures["redis_calls_per_task"] = sum(calls.values()) / ran
        figures["redis_calls_by_command"] = {name: n / ran for name, n in sorted(calls.items())}
        worker_cpu = tree_cpu_seconds(started.pid) - cpu_before[0]
        figures["worker_cpu_ms_per_task"] = worker_cpu / ran * 1e3
        figures["redis_cpu_us_per_task"] = (tree_cpu_seconds(redis_pid) - cpu_before[1]) / ran * 1e6
        figures["tasks_per_s"] = statistics.median(r["tasks_per_s"] for r in runs)
        figures["all_ran"] = all(r["ran"] == r["sent"] for r in runs)
        figures["throughput_runs"] = runs
    finally:
        fleet.stop()
    return figures


def control_client(url):
    from celery import Celery

    return Celery("bench-control", broker=url)


def time_until_all_ping(control, started, timeout=120):
    """Seconds from ``started`` until every worker of the fleet answers a control ping."""
    while time.monotonic() - started < timeout:
        replies = control.control.ping(timeout=0.3) or []
        names = {name.split("@")[0] for reply in replies for name in reply}
        if names >= set(QUEUES):
            return time.monotonic() - started
    return None


def start_workers(system, fleet):
    return {
        queue: fleet.start(f"{system}-fleet-{queue}", worker_argv(system, queue))
        for queue in QUEUES
    }


def start_beat_and_flower(system, fleet, logs):
    if system == "platform":
        return [
            fleet.start("platform-beat", [PY, "manage.py", "runbeat"]),
            fleet.start(
                "platform-flower", [PY, "manage.py", "runflower", "--port", str(free_port())]
            ),
        ]
    stock = [PY, "-m", "celery", "-A", "bench.systems.stock_celery"]
    return [
        fleet.start("celery-beat", [*stock, "beat", "-s", str(logs / "celerybeat-schedule")]),
        fleet.start(
            "celery-flower", [*stock, "flower", f"--port={free_port()}", "--address=127.0.0.1"]
        ),
    ]


def flood_queues(system, env, queues, n):
    """``n`` tasks onto each of ``queues``, one producer process per queue, all at once."""
    floods = [
        subprocess.Popen(
            [PY, "-m", "bench.producer", system, "flood", str(n), queue],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        for queue in queues
    ]
    for flood in floods:
        flood.wait(600)


def isolation(system, env, client):
    """The cert queue's pickup p99 idle, then while the other four queues are flooded."""
    env = {**env, "BENCH_QUEUE": "cert"}
    idle = producer(system, "pickup", PICKUPS, env)
    others = [queue for queue in QUEUES if queue != "cert"]
    flood_queues(system, env, others, FLOOD)
    # Only pickups sent while the other queues still hold a backlog count as flooded.
    flooded_env = {**env, "BENCH_FLOODED_QUEUES": ",".join(others)}
    flooded = producer(system, "pickup", PICKUPS, flooded_env)
    if idle["samples"] < PICKUPS:
        raise RuntimeError(f"{system}: idle cert pickups went missing: {idle}")
    enough = flooded["samples"] >= MIN_FLOODED_SAMPLES
    return {
        "fleet_idle_p99_ms": idle["p99_ms"],
        "flooded_samples": flooded["samples"],
        "flooded_p50_ms": flooded["p50_ms"],
        "flooded_p99_ms": flooded["p99_ms"] if enough else None,
        "flood_backlog_at_end": sum(client.llen(queue) for queue in others),
        "isolation_ratio": flooded["p99_ms"] / idle["p99_ms"] if enough else None,
    }


def load_every_queue(system, env, client, timeout=900):
    """LOAD no-op tasks onto each of the five queues at once; back when all are drained."""
    flood_queues(system, env, QUEUES, LOAD)
    deadline = time.monotonic() + timeout
    while sum(client.llen(queue) for queue in QUEUES) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(5)  # the last tasks finish; memory settles


def measure_fleet(system, env, logs, client):
    """Five workers + beat + Flower, one process each (as systemd runs them): memory
    idle and after load, isolation, restart of the workers."""
    fleet = Fleet(env, logs)
    control = control_client(env["BENCH_REDIS_URL"])
    client.flushdb()
    started = time.monotonic()
    workers = start_workers(system, fleet)
    beat, flower = start_beat_and_flower(system, fleet, logs)
    roots = [p.pid for p in (*workers.values(), beat, flower)]

    def memory():
        parents = [p.pid for p in workers.values()]
        return memory_by_kind(roots, parents, beat.pid, flower.pid)

    try:
        figures = {"start_to_5_pings_s": time_until_all_ping(control, started)}
        time.sleep(5)  # idle
        totals = [tree_memory_mb(pid) for pid in roots]
        figures["fleet_rss_mb"] = sum(t[0] for t in totals)
        figures["fleet_pss_mb"] = sum(t[1] for t in totals)
        figures["fleet_idle_by_kind"] = memory()
        load_every_queue(system, env, client)
        figures["fleet_loaded_pss_mb"] = sum(tree_memory_mb(pid)[1] for pid in roots)
        figures["fleet_loaded_by_kind"] = memory()
        figures.update(isolation(system, env, client))
        client.flushdb()  # drop the rest of the flood before restarting
        for proc in workers.values():
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in workers.values():
            proc.wait(60)
        fleet.procs = [p for p in fleet.procs if p not in workers.values()]
        restarted = time.monotonic()
        start_workers(system, fleet)
        figures["restart_to_5_pings_s"] = time_until_all_ping(control, restarted)
        return figures
    finally:
        fleet.stop()


def started_pids(log_path):
    """honcho's "NAME started (pid=N)" lines of ``make run``'s output."""
    pids = {}
    for line in log_path.read_text().splitlines():
        if " started (pid=" in line:
            name = line.split("|", 1)[1].split()[0]
            pids[name] = int(line.rsplit("pid=", 1)[1].rstrip(")"))
    return pids


def beat_pid(log_path):
    """The active beat's PID, from its log line "beat HOST:PID is now the active beat"."""
    found = re.findall(r"beat \S+:(\d+) is now the active beat", log_path.read_text())
    return int(found[-1]) if found else None


def measure_dev_fleet(env, logs, client, concurrency=None):
    """``make run``'s fleet (manage.py runplatform: every process forked from one
    preloaded parent, beat forked from the cert worker): memory idle and after load."""
    client.flushdb()
    fleet = Fleet(env, logs)
    control = control_client(env["BENCH_REDIS_URL"])
    started = time.monotonic()
    argv = [PY, "manage.py", "runplatform", "--flower-port", str(free_port())]
    if concurrency:
        argv += ["-c", str(concurrency)]
    name = f"platform-dev-fleet-c{concurrency or 'default'}"
    supervisor = fleet.start(name, argv)
    try:
        figures = {"start_to_5_pings_s": time_until_all_ping(control, started)}
        time.sleep(5)  # idle
        pids = started_pids(logs / f"{name}.log")
        parents = [pids[queue] for queue in QUEUES]

        def memory():
            beat = beat_pid(logs / f"{name}.log")
            return memory_by_kind([supervisor.pid], parents, beat, pids["flower"])

        figures["fleet_rss_mb"], figures["fleet_pss_mb"] = tree_memory_mb(supervisor.pid)
        figures["fleet_idle_by_kind"] = memory()
        load_every_queue("platform", env, client)
        figures["fleet_loaded_pss_mb"] = tree_memory_mb(supervisor.pid)[1]
        figures["fleet_loaded_by_kind"] = memory()
        return figures
    finally:
        supervisor.send_signal(signal.SIGINT)  # Ctrl-C, as a developer stops it
        try:
            supervisor.wait(90)
        finally:
            fleet.stop()


def main():
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    server = RedisServer(workdir, free_port())  # AOF everysec, as deployed
    server.start()
    url = server.url
    client = server.client()
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
        for system in SYSTEMS:
            print(f"measuring {system} …", file=sys.stderr)
            results[system] = measure_system(system, env, workdir, client, server.process.pid)
        for system in ("platform", "celery"):
            print(f"measuring the {system} fleet …", file=sys.stderr)
            results[system].update(measure_fleet(system, env, workdir, client))
        print("measuring the platform's development fleet (make run) …", file=sys.stderr)
        results["platform_dev"] = measure_dev_fleet(env, workdir, client)
        # Like for like with stock's pool size (two per worker on this machine).
        results["platform_dev_c2"] = measure_dev_fleet(env, workdir, client, concurrency=2)
    finally:
        server.stop_cleanly()
        # Whatever was measured, even if a later stage failed.
        (workdir / "results.json").write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\nraw figures: {workdir / 'results.json'}", file=sys.stderr)
    shutil.rmtree(workdir / "appendonlydir", ignore_errors=True)


def fmt(value, spec=".0f"):
    return "n/a" if value is None else format(value, spec)


def print_table(results):
    stock, platform_ = results["celery"], results["platform"]
    print(
        f"Machine: {host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}, "
        f"N={N} no-op tasks, {PICKUPS} pickups, {FLOOD} flood tasks per other queue\n"
    )
    print(
        "| system | enqueue µs (vs stock) | tasks/s, median of 3 (vs stock) | pickup p50 / p99 ms"
        " | idle worker RSS / PSS MB | worker CPU ms / task | Redis CPU µs / task"
        " | Redis commands / task | every task ran |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in SYSTEMS:
        r = results[name]
        print(
            f"| {name} | {r['enqueue_us']:.0f} ({r['enqueue_us'] / stock['enqueue_us']:.2f}) | "
            f"{r['tasks_per_s']:.0f} ({r['tasks_per_s'] / stock['tasks_per_s']:.2f}) | "
            f"{fmt(r['p50_ms'], '.1f')} / {fmt(r['p99_ms'], '.1f')} | "
            f"{r['worker_rss_mb']:.0f} / {r['worker_pss_mb']:.0f} | "
            f"{r['worker_cpu_ms_per_task']:.2f} | {r['redis_cpu_us_per_task']:.0f} | "
            f"{r['redis_calls_per_task']:.1f} | "
            f"{'yes' if r['all_ran'] else 'NO: ' + str(r['throughput_runs'])} |"
        )
    print(
        "\n| fleet: 5 workers + beat + Flower | idle RSS MB (vs stock) | idle PSS MB"
        " | start → 5 pings s | restart workers → 5 pings s"
        " | cert p99 idle / others flooded ms (ratio, flooded pickups) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("platform", "celery"):
        r = results[name]
        print(
            f"| {name} | {r['fleet_rss_mb']:.0f} ({r['fleet_rss_mb'] / stock['fleet_rss_mb']:.2f})"
            f" | {r['fleet_pss_mb']:.0f} | {fmt(r['start_to_5_pings_s'], '.1f')} | "
            f"{fmt(r['restart_to_5_pings_s'], '.1f')} | {r['fleet_idle_p99_ms']:.1f} / "
            f"{fmt(r['flooded_p99_ms'], '.1f')} ({fmt(r['isolation_ratio'], '.1f')}, "
            f"{r['flooded_samples']} pickups) |"
        )
    print_memory(results)
    dramatiq, huey = results["dramatiq"], results["huey"]
    targets = [
        ("throughput ≥ Dramatiq", platform_["tasks_per_s"] >= dramatiq["tasks_per_s"]),
        ("throughput ≥ 3x stock Celery", platform_["tasks_per_s"] >= 3 * stock["tasks_per_s"]),
        ("throughput ≥ Huey", platform_["tasks_per_s"] >= huey["tasks_per_s"]),
        ("enqueue ≤ Dramatiq", platform_["enqueue_us"] <= dramatiq["enqueue_us"]),
        ("idle pickup p99 ≤ 2 ms", (platform_["p99_ms"] or 1e9) <= 2),
        ("isolation ratio ≤ 2", (platform_["isolation_ratio"] or 1e9) <= 2),
        ("fleet RSS ≤ ½ stock fleet", platform_["fleet_rss_mb"] <= stock["fleet_rss_mb"] / 2),
        ("restart → 5 pings ≤ 5 s", (platform_["restart_to_5_pings_s"] or 1e9) <= 5),
    ]
    print("\n| performance target | met in this run |")
    print("|---|---|")
    for label, met in targets:
        print(f"| {label} | {'yes' if met else 'no'} |")
    for name in ("platform", "celery"):
        by_command = results[name]["redis_calls_by_command"]
        busiest = sorted(by_command.items(), key=lambda item: -item[1])[:8]
        print(
            f"\n{name}: Redis commands per task: " + ", ".join(f"{c} {n:.2f}" for c, n in busiest)
        )
    backlog = {name: results[name]["flood_backlog_at_end"] for name in ("platform", "celery")}
    print(f"\nflood still queued after the flooded pickups: {backlog}")


KINDS = ("worker parent", "pool child", "beat", "flower", "supervisor")
FLEETS = {
    "platform_dev": "platform, make run (forked from one preloaded parent, 1 pool process)",
    "platform_dev_c2": "platform, make run -c 2 (2 pool processes, as stock)",
    "platform": "platform, one process per unit (as systemd runs it)",
    "celery": "stock Celery (5 workers, beat, Flower)",
}


def print_memory(results):
    stock = results["celery"]
    print(f"\n| fleet PSS MB | idle (vs stock) | after {LOAD} no-ops per queue (vs stock) |")
    print("|---|---:|---:|")
    for name, label in FLEETS.items():
        r = results[name]
        print(
            f"| {label} | {r['fleet_pss_mb']:.0f} ({r['fleet_pss_mb'] / stock['fleet_pss_mb']:.2f})"
            f" | {r['fleet_loaded_pss_mb']:.0f}"
            f" ({r['fleet_loaded_pss_mb'] / stock['fleet_loaded_pss_mb']:.2f}) |"
        )
    print("\n| PSS MB (processes) by kind | " + " | ".join(KINDS) + " |")
    print("|---|" + "---:|" * len(KINDS))
    for name, label in FLEETS.items():
        for state in ("idle", "loaded"):
            by_kind = results[name][f"fleet_{state}_by_kind"]
            cells = (
                f"{by_kind[kind]['pss_mb']:.0f} ({by_kind[kind]['processes']})"
                if kind in by_kind
                else "-"
                for kind in KINDS
            )
            print(f"| {label}, {state} | " + " | ".join(cells) + " |")
    dev = results["platform_dev"]
    print("\n| memory target | met in this run |")
    print("|---|---|")
    for label, met in (
        (
            "make run fleet idle PSS ≤ 0.5x stock",
            dev["fleet_pss_mb"] <= 0.5 * stock["fleet_pss_mb"],
        ),
        (
            "make run fleet PSS after load ≤ 0.6x stock",
            dev["fleet_loaded_pss_mb"] <= 0.6 * stock["fleet_loaded_pss_mb"],
        ),
        (
            "per-unit fleet idle PSS ≤ 0.5x stock",
            results["platform"]["fleet_pss_mb"] <= 0.5 * stock["fleet_pss_mb"],
        ),
    ):
        print(f"| {label} | {'yes' if met else 'no'} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--print"]:  # the tables again, from a run's results.json
        print_table(json.loads(Path(sys.argv[2]).read_text()))
    else:
        main()
