"""One command, one machine, one private redis-server: the platform beside stock Celery,
Dramatiq and Huey, with no-op tasks. Prints a markdown table for docs/performance.md.

    make bench            (N=5000 by default; BENCH_N, BENCH_PICKUPS to change)
    make bench BENCH_BASELINE=<git revision>
                          adds platform@<short sha>: the platform at that revision,
                          measured like "platform" in the same run (bench.baseline)
    make bench BENCH_SYSTEMS=platform,platform@base BENCH_STAGES=worker
                          only those systems (comma-separated, of platform, platform@base
                          or platform@<rev>, celery, dramatiq, huey) and stages (worker:
                          one worker, the first table, with the broker ceiling = 1 s ÷
                          Redis CPU per task; fleet: five workers + beat + Flower; dev:
                          make run's fleet; scale: 1, 2, 4 workers on one queue)
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

from bench.baseline import ALIAS, PREFIX, Baseline, check_origin, logged_origin
from harness.processes import RedisServer, free_port
from platform_core.config.queues import QUEUES, WORKER_COMMANDS

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
N = int(os.environ.get("BENCH_N", "5000"))
PICKUPS = int(os.environ.get("BENCH_PICKUPS", "300"))
FLOOD = int(os.environ.get("BENCH_FLOOD", "20000"))  # tasks per other queue (isolation)
LOAD = int(os.environ.get("BENCH_LOAD", "5000"))  # tasks per queue before "after load" memory
SYSTEMS = ("platform", "celery", "dramatiq", "huey")
STAGES = ("worker", "fleet", "dev", "scale")
SCALE = (1, 2, 4)  # stage scale: worker processes on one queue, each started on its own
# What a Dramatiq or Huey worker logs once it consumes (Celery's kinds answer a ping).
READY_LINES = {"dramatiq": "Worker process is ready for action.", "huey": "Huey consumer started"}
BASELINE = os.environ.get("BENCH_BASELINE", "").strip()  # a git revision, or none
# Where each platform system's code is: this tree, and the baseline's (main() adds it).
# Its processes run there (working directory and PYTHONPATH).
TREES = {"platform": ROOT}
# The platform's no-op and pickup tasks: only the cert workers started here load them.
PLATFORM_TASKS = "bench.systems.platform_tasks"
MIN_FLOODED_SAMPLES = 100  # fewer pickups while flooded: no isolation figure (raise BENCH_FLOOD)
DEV_FLEETS = ("_dev", "_dev_c2")  # results["platform_dev"]: make run's fleet, and with -c 2


def kind(system):
    """What a system is: "platform@a8ff677" is the platform, at another revision."""
    return "platform" if system.startswith(PREFIX) else system


def tree(system):
    """The working directory (and, for the platform, PYTHONPATH) of a system's processes."""
    return TREES.get(system, ROOT)


def measured(results):
    """The systems of a run's results, in the order they were measured."""
    return [name for name in results if kind(name) in SYSTEMS and not name.endswith(DEV_FLEETS)]


class Fleet:
    """Processes started in their own sessions, stopped together."""

    def __init__(self, env, logs, cwd=ROOT):
        self.env, self.logs, self.cwd, self.procs = env, logs, cwd, []

    def start(self, name, argv, extra_env=None):
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            cwd=self.cwd,
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
        [PY, "-m", "bench.producer", kind(system), mode, str(n)],
        cwd=tree(system),
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{system} {mode}: {out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if kind(system) == "platform":  # every platform producer says where its code was
        check_origin(f"{system}'s producer", result.pop("platform_core", None), tree(system))
    return result


def worker_argv(system, queue="cert", name=None, processes=2):
    """How ``system`` runs one worker; ``processes``: Dramatiq's and Huey's worker
    processes (the platform's and Celery's prefork pool keep their default, one per core)."""
    name = name or queue
    if kind(system) == "platform":
        argv = [PY, "manage.py", WORKER_COMMANDS[queue], "-n", f"{name}@%h"]
        # Everything after runworker's `--` goes to `celery worker`; BENCH_WORKER_ARGS
        # (e.g. "-P threads -c 8") measures another pool on the platform's workers.
        extra = [*os.environ.get("BENCH_WORKER_ARGS", "").split()]
        if queue == "cert":
            extra += ["--include", PLATFORM_TASKS]
        return [*argv, "--", *extra] if extra else argv
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
            str(processes),
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
            str(processes),
        ]
    raise ValueError(system)


def check_alive(system, worker, log_path):
    if worker.poll() is not None:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{system} worker exited ({worker.returncode}): {tail}")


def wait_until_serving(system, env, worker, log_path, timeout=120):
    """Until a pickup probe sent now is executed: the worker is really consuming."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        check_alive(system, worker, log_path)
        try:
            result = producer(system, "pickup", 1, env)
            if result["samples"]:
                return
        except RuntimeError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{system} worker did not start serving")


def check_worker_origin(system, log_path):
    """A platform worker that loaded the benchmark tasks ran the code of its own tree."""
    if kind(system) == "platform":
        check_origin(f"{system}'s worker ({log_path})", logged_origin(log_path), tree(system))


def measure_system(system, env, logs, client, redis_pid):
    fleet = Fleet(env, logs, tree(system))
    figures = {}
    client.flushdb()
    figures.update(producer(system, "enqueue", 2000, env))  # no worker: enqueue only
    client.flushdb()
    started = fleet.start(f"{system}-worker", worker_argv(system, name="single"))
    try:
        wait_until_serving(system, env, started, logs / f"{system}-worker.log")
        check_worker_origin(system, logs / f"{system}-worker.log")
        time.sleep(2)
        rss, pss = tree_memory_mb(started.pid)
        figures.update(worker_rss_mb=rss, worker_pss_mb=pss)
        figures.update(producer(system, "pickup", PICKUPS, env))
        figures.update(measure_throughput(system, env, client, redis_pid, [started.pid]))
    finally:
        fleet.stop()
    return figures


def broker_ceiling(redis_cpu_us_per_task):
    """Tasks/s at which Redis would spend a whole core: 1 s ÷ its CPU per task."""
    return 1e6 / redis_cpu_us_per_task if redis_cpu_us_per_task else None


def measure_throughput(system, env, client, redis_pid, worker_pids):
    """N no-ops, three runs (tasks/s: their median), and the CPU per task the workers
    (every process of their trees) and Redis spent over them, with Redis's commandstats."""

    def cpu_seconds():
        return sum(tree_cpu_seconds(pid) for pid in worker_pids), tree_cpu_seconds(redis_pid)

    # On 2 shared cores the sum of what every process spends per task bounds the throughput.
    cpu_before = cpu_seconds()
    client.config_resetstat()
    runs = [producer(system, "throughput", N, env) for _ in range(3)]
    ran = sum(r["ran"] for r in runs) or 1
    figures = {}
    # Every command Redis ran over the runs, producer and result writes included.
    commandstats = client.info("commandstats")
    calls = {name[8:]: stats["calls"] for name, stats in commandstats.items()}
    figures["redis_calls_per_task"] = sum(calls.values()) / ran
    figures["redis_calls_by_command"] = {name: n / ran for name, n in sorted(calls.items())}
    # Redis's own time inside the commands (no I/O, no event loop; a busy machine slows it).
    usec = {name[8:]: stats["usec"] for name, stats in commandstats.items()}
    figures["redis_command_us_per_task"] = sum(usec.values()) / ran
    figures["redis_us_by_command"] = {name: u / ran for name, u in sorted(usec.items())}
    # Of those, the producer's GETs waiting for the count: more the slower the run.
    figures["producer_polls_per_task"] = sum(r.get("polls", 0) for r in runs) / ran
    worker_cpu, redis_cpu = cpu_seconds()
    figures["worker_cpu_ms_per_task"] = (worker_cpu - cpu_before[0]) / ran * 1e3
    figures["redis_cpu_us_per_task"] = (redis_cpu - cpu_before[1]) / ran * 1e6
    figures["broker_ceiling_tasks_per_s"] = broker_ceiling(figures["redis_cpu_us_per_task"])
    figures["tasks_per_s"] = statistics.median(r["tasks_per_s"] for r in runs)
    figures["all_ran"] = all(r["ran"] == r["sent"] for r in runs)
    figures["throughput_runs"] = runs
    return figures


def measure_replicated_enqueue(system, env, workdir, server, client):
    """The platform's enqueue with one replica confirming each (PLATFORM_BROKER_MIN_REPLICAS=1,
    WAIT in the enqueue's round trip) beside the same enqueue without, alternating the two
    three times on the same Redis and replica (a busy moment hits both): medians."""
    client.config_set("repl-diskless-sync-delay", 0)  # the replica syncs at once
    replica = RedisServer(
        workdir / f"replica-{system}",
        free_port(),
        extra_args=("--replicaof", "127.0.0.1", str(server.port)),
    )
    replica.directory.mkdir()
    replica.start()
    try:
        deadline = time.monotonic() + 30
        while client.execute_command("WAIT", 1, 100) < 1:
            if time.monotonic() > deadline:
                raise RuntimeError("the bench's replica did not sync")
        plain, confirmed = [], []
        for _ in range(3):
            for runs, wanted in ((plain, "0"), (confirmed, "1")):
                client.flushdb()
                measured = producer(
                    system, "enqueue", 2000, {**env, "PLATFORM_BROKER_MIN_REPLICAS": wanted}
                )
                runs.append(measured["enqueue_us"])
        return {
            "enqueue_beside_replica_us": statistics.median(plain),
            "enqueue_replicated_us": statistics.median(confirmed),
        }
    finally:
        replica.kill_9()
        shutil.rmtree(replica.directory, ignore_errors=True)


def control_client(url):
    from celery import Celery

    return Celery("bench-control", broker=url)


def pinged(control):
    """The node names (before the @) of the workers that answer a control ping."""
    replies = control.control.ping(timeout=0.3) or []
    return {name.split("@")[0] for reply in replies for name in reply}


def time_until_all_ping(control, started, timeout=120):
    """Seconds from ``started`` until every worker of the fleet answers a control ping."""
    while time.monotonic() - started < timeout:
        if pinged(control) >= set(QUEUES):
            return time.monotonic() - started
    return None


def start_workers(system, fleet):
    return {
        queue: fleet.start(f"{system}-fleet-{queue}", worker_argv(system, queue))
        for queue in QUEUES
    }


def start_beat_and_flower(system, fleet, logs):
    if kind(system) == "platform":
        return [
            fleet.start(f"{system}-beat", [PY, "manage.py", "runbeat"]),
            fleet.start(
                f"{system}-flower", [PY, "manage.py", "runflower", "--port", str(free_port())]
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
            [PY, "-m", "bench.producer", kind(system), "flood", str(n), queue],
            cwd=tree(system),
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
    fleet = Fleet(env, logs, tree(system))
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
        check_worker_origin(system, logs / f"{system}-fleet-cert.log")
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


def measure_dev_fleet(system, env, logs, client, concurrency=None):
    """``make run``'s fleet (manage.py runplatform: every process forked from one
    preloaded parent, beat forked from the cert worker): memory idle and after load."""
    client.flushdb()
    fleet = Fleet(env, logs, tree(system))
    control = control_client(env["BENCH_REDIS_URL"])
    started = time.monotonic()
    argv = [PY, "manage.py", "runplatform", "--flower-port", str(free_port())]
    if concurrency:
        argv += ["-c", str(concurrency)]
    name = f"{system}-dev-fleet-c{concurrency or 'default'}"
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
        load_every_queue(system, env, client)
        figures["fleet_loaded_pss_mb"] = tree_memory_mb(supervisor.pid)[1]
        figures["fleet_loaded_by_kind"] = memory()
        return figures
    finally:
        supervisor.send_signal(signal.SIGINT)  # Ctrl-C, as a developer stops it
        try:
            supervisor.wait(90)
        finally:
            fleet.stop()


def start_scaled(system, fleet, logs, count):
    """``count`` workers on the cert queue, one broker consumer each (Dramatiq's and
    Huey's with one worker process): {node name: (process, log path)}."""
    workers = {}
    for index in range(1, count + 1):
        node, log = f"scale{index}", f"{system}-scale{count}-{index}"
        argv = worker_argv(system, "cert", node, processes=1)
        workers[node] = (fleet.start(log, argv), logs / f"{log}.log")
    return workers


def all_ready(system, control, workers):
    """Every one of ``workers`` consumes: Celery's kinds answer a control ping by node
    name, Dramatiq's and Huey's have logged their READY_LINES."""
    if control is not None:
        return pinged(control) >= set(workers)
    logs = [log.read_text(errors="replace") for _, log in workers.values()]
    return all(READY_LINES[system] in text for text in logs)


def wait_until_all_serve(system, env, workers, timeout=120):
    """Until every one of ``workers`` is ready (``all_ready``) and a probe is executed."""
    control = None if system in READY_LINES else control_client(env["BENCH_REDIS_URL"])
    deadline = time.monotonic() + timeout
    while not all_ready(system, control, workers):
        for worker, log in workers.values():
            check_alive(system, worker, log)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{system}: not every one of {', '.join(workers)} started serving")
        time.sleep(0.5)
    first, log = next(iter(workers.values()))
    wait_until_serving(system, env, first, log)


def measure_scaled(system, env, logs, client, redis_pid, count):
    """``count`` workers on one queue, all serving: tasks/s and CPU per task (Redis's, and
    the workers' summed over their trees), as in stage worker (``measure_throughput``)."""
    fleet = Fleet(env, logs, tree(system))
    client.flushdb()
    workers = start_scaled(system, fleet, logs, count)
    try:
        wait_until_all_serve(system, env, workers)
        for _, log in workers.values():
            check_worker_origin(system, log)
        time.sleep(2)
        pids = [worker.pid for worker, _ in workers.values()]
        return measure_throughput(system, env, client, redis_pid, pids)
    finally:
        fleet.stop()


def measure_scale(system, env, logs, client, redis_pid):
    """Scale-out on one queue: {"1": figures, "2": …, "4": …} (SCALE workers)."""
    env = {**env, "BENCH_QUEUE": "cert"}  # stock Celery's workers consume cert too (-Q)
    return {
        str(count): measure_scaled(system, env, logs, client, redis_pid, count) for count in SCALE
    }


def migrate(root, database_url, extra_env=None):
    subprocess.run(
        [PY, "manage.py", "migrate", "-v0"],
        cwd=root,
        check=True,
        env={**os.environ, "DATABASE_URL": database_url, **(extra_env or {})},
    )


def chosen(baseline):
    """The systems (BENCH_SYSTEMS) and stages (BENCH_STAGES) to measure; default all."""
    known = ["platform", *([baseline.name] if baseline else []), *SYSTEMS[1:]]
    names = {name: name for name in known}
    if baseline:
        names.update({ALIAS: baseline.name, f"{PREFIX}{baseline.revision}": baseline.name})
    wanted = [n.strip() for n in os.environ.get("BENCH_SYSTEMS", "").split(",") if n.strip()]
    unknown = [name for name in wanted if name not in names]
    if unknown:
        hint = "" if baseline else f" ({ALIAS} needs BENCH_BASELINE=<git revision>)"
        raise SystemExit(f"BENCH_SYSTEMS: {', '.join(unknown)} not among {', '.join(names)}{hint}")
    systems = [name for name in known if not wanted or name in {names[w] for w in wanted}]
    stages = os.environ.get("BENCH_STAGES", "").replace(",", " ").split() or list(STAGES)
    if set(stages) - set(STAGES):
        raise SystemExit(f"BENCH_STAGES: {', '.join(stages)} not among {', '.join(STAGES)}")
    return systems, [stage for stage in STAGES if stage in stages]


def check_queues(baseline, stages):
    """The harness starts the baseline's workers by this tree's queue names and commands."""
    queues, commands = baseline.queues()
    if commands.get("cert") != WORKER_COMMANDS["cert"]:
        raise SystemExit(f"{baseline.name} has no {WORKER_COMMANDS['cert']} command: {commands}")
    if {"fleet", "dev"} & set(stages) and (queues, commands) != (list(QUEUES), WORKER_COMMANDS):
        raise SystemExit(
            f"{baseline.name}'s queues {queues} are not this tree's {list(QUEUES)}: its fleet "
            "cannot be measured like this tree's (BENCH_STAGES=worker measures one worker)"
        )


def main():
    baseline = Baseline(BASELINE) if BASELINE else None
    systems, stages = chosen(baseline)
    if baseline is None or baseline.name not in systems:
        run(systems, stages, None)
        return
    print(f"{baseline.name}: git archive {baseline.sha} …", file=sys.stderr)
    with baseline:  # the exported tree is removed on the way out, whatever happened
        TREES[baseline.name] = baseline.root
        check_queues(baseline, stages)
        run(systems, stages, baseline)


def run(systems, stages, baseline):
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    server = RedisServer(workdir, free_port())  # AOF everysec, as deployed
    server.start()
    url = server.url
    client = server.client()
    migrate(ROOT, f"sqlite:///{workdir / 'db.sqlite3'}")
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
    envs = {system: env for system in systems}
    results = {}
    if baseline:
        # Its own database (its migrations may differ) and only its own tree to import.
        database = f"sqlite:///{workdir / f'db-{baseline.short}.sqlite3'}"
        migrate(baseline.root, database, {"PYTHONPATH": str(baseline.root)})
        envs[baseline.name] = {**env, "DATABASE_URL": database, "PYTHONPATH": str(baseline.root)}
        results["baseline"] = {"name": baseline.name, "sha": baseline.sha, "rev": baseline.revision}
    try:
        for system in systems if "worker" in stages else ():
            print(f"measuring {system} …", file=sys.stderr)
            figures = measure_system(system, envs[system], workdir, client, server.process.pid)
            if kind(system) == "platform":
                figures.update(
                    measure_replicated_enqueue(system, envs[system], workdir, server, client)
                )
            results[system] = figures
        for system in systems if "fleet" in stages else ():
            if kind(system) == "platform" or system == "celery":
                print(f"measuring the {system} fleet …", file=sys.stderr)
                figures = measure_fleet(system, envs[system], workdir, client)
                results.setdefault(system, {}).update(figures)
        for system in systems if "dev" in stages else ():
            if kind(system) == "platform":
                print(f"measuring {system}'s development fleet (make run) …", file=sys.stderr)
                results[f"{system}_dev"] = measure_dev_fleet(system, envs[system], workdir, client)
                # Like for like with stock's pool size (two per worker on this machine).
                results[f"{system}_dev_c2"] = measure_dev_fleet(
                    system, envs[system], workdir, client, concurrency=2
                )
        for system in systems if "scale" in stages else ():
            print(f"measuring {system} with {SCALE} workers on one queue …", file=sys.stderr)
            figures = measure_scale(system, envs[system], workdir, client, server.process.pid)
            results.setdefault(system, {})["scale"] = figures
    finally:
        server.stop_cleanly()
        # Whatever was measured, even if a later stage failed.
        (workdir / "results.json").write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"\nraw figures: {workdir / 'results.json'}", file=sys.stderr)
    shutil.rmtree(workdir / "appendonlydir", ignore_errors=True)


def fmt(value, spec=".0f"):
    return "n/a" if value is None else format(value, spec)


def ratio(value, reference, spec=".2f"):
    """``value / reference``; n/a when either was not measured."""
    return "n/a" if value is None or not reference else format(value / reference, spec)


def met(check):
    """ "yes"/"no" for a target, or None when the run did not measure what it needs."""
    try:
        return "yes" if check() else "no"
    except (KeyError, TypeError):  # a figure missing, or None (e.g. no flooded pickups)
        return None


def print_targets(title, targets):
    """A target table, unless this run measured none of its targets."""
    verdicts = [(label, met(check)) for label, check in targets]
    if all(verdict is None for _, verdict in verdicts):
        return
    print(f"\n| {title} | met in this run |")
    print("|---|---|")
    for label, verdict in verdicts:
        print(f"| {label} | {verdict or 'not measured'} |")


def print_table(results):
    systems = measured(results)
    stock, platform_ = results.get("celery", {}), results.get("platform", {})
    print(
        f"Machine: {host.machine()}, {os.cpu_count()} cores, Python {host.python_version()}, "
        f"N={N} no-op tasks, {PICKUPS} pickups, {FLOOD} flood tasks per other queue"
    )
    if "baseline" in results:
        base = results["baseline"]
        print(f"{base['name']}: the platform at {base['sha']} (BENCH_BASELINE={base['rev']})")
    workers = [name for name in systems if "enqueue_us" in results[name]]
    if workers:
        print(
            "\n| system | enqueue µs (vs stock) | tasks/s, median of 3 (vs stock)"
            " | pickup p50 / p99 ms | idle worker RSS / PSS MB | worker CPU ms / task"
            " | Redis CPU µs / task | broker ceiling, tasks/s = 1 s ÷ Redis CPU per task"
            " | Redis commands / task | every task ran |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for name in workers:
        r = results[name]
        print(
            f"| {name} | {r['enqueue_us']:.0f} ({ratio(r['enqueue_us'], stock.get('enqueue_us'))})"
            f" | {r['tasks_per_s']:.0f} ({ratio(r['tasks_per_s'], stock.get('tasks_per_s'))}) | "
            f"{fmt(r['p50_ms'], '.1f')} / {fmt(r['p99_ms'], '.1f')} | "
            f"{r['worker_rss_mb']:.0f} / {r['worker_pss_mb']:.0f} | "
            f"{r['worker_cpu_ms_per_task']:.2f} | {r['redis_cpu_us_per_task']:.0f} | "
            f"{fmt(broker_ceiling(r['redis_cpu_us_per_task']))} | "
            f"{r['redis_calls_per_task']:.1f} | "
            f"{'yes' if r['all_ran'] else 'NO: ' + str(r['throughput_runs'])} |"
        )
    replicated = [name for name in workers if "enqueue_replicated_us" in results[name]]
    if replicated:
        print(
            "\n| system | enqueue µs, replica attached, not waited for"
            " | with the replica confirming each (WAIT) | cost |"
        )
        print("|---|---:|---:|---:|")
    for name in replicated:
        r = results[name]
        plain, confirmed = r["enqueue_beside_replica_us"], r["enqueue_replicated_us"]
        print(f"| {name} | {plain:.0f} | {confirmed:.0f} | +{confirmed - plain:.0f} µs |")
    fleets = [name for name in systems if "fleet_rss_mb" in results[name]]
    if fleets:
        print(
            "\n| fleet: 5 workers + beat + Flower | idle RSS MB (vs stock) | idle PSS MB"
            " | start → 5 pings s | restart workers → 5 pings s"
            " | cert p99 idle / others flooded ms (ratio, flooded pickups) |"
        )
        print("|---|---:|---:|---:|---:|---:|")
    for name in fleets:
        r = results[name]
        vs_stock = ratio(r["fleet_rss_mb"], stock.get("fleet_rss_mb"))
        print(
            f"| {name} | {r['fleet_rss_mb']:.0f} ({vs_stock})"
            f" | {r['fleet_pss_mb']:.0f} | {fmt(r['start_to_5_pings_s'], '.1f')} | "
            f"{fmt(r['restart_to_5_pings_s'], '.1f')} | {r['fleet_idle_p99_ms']:.1f} / "
            f"{fmt(r['flooded_p99_ms'], '.1f')} ({fmt(r['isolation_ratio'], '.1f')}, "
            f"{r['flooded_samples']} pickups) |"
        )
    print_memory(results, systems)
    print_scale(results, systems)
    print_comparison(results, systems)
    # The targets are the platform's (this tree's) against the other systems.
    print_targets(
        "performance target",
        [
            (
                "throughput ≥ Dramatiq",
                lambda: platform_["tasks_per_s"] >= results["dramatiq"]["tasks_per_s"],
            ),
            (
                "throughput ≥ 3x stock Celery",
                lambda: platform_["tasks_per_s"] >= 3 * stock["tasks_per_s"],
            ),
            (
                "throughput ≥ Huey",
                lambda: platform_["tasks_per_s"] >= results["huey"]["tasks_per_s"],
            ),
            (
                "enqueue ≤ Dramatiq",
                lambda: platform_["enqueue_us"] <= results["dramatiq"]["enqueue_us"],
            ),
            ("idle pickup p99 ≤ 2 ms", lambda: (platform_["p99_ms"] or 1e9) <= 2),
            ("isolation ratio ≤ 2", lambda: (platform_["isolation_ratio"] or 1e9) <= 2),
            (
                "fleet RSS ≤ ½ stock fleet",
                lambda: platform_["fleet_rss_mb"] <= stock["fleet_rss_mb"] / 2,
            ),
            ("restart → 5 pings ≤ 5 s", lambda: (platform_["restart_to_5_pings_s"] or 1e9) <= 5),
        ],
    )
    dramatiq = results.get("dramatiq", {})
    print_targets(
        "cost target (the broker's and the worker's CPU per task)",
        [
            (
                "Redis CPU per task ≤ Dramatiq's",
                lambda: platform_["redis_cpu_us_per_task"] <= dramatiq["redis_cpu_us_per_task"],
            ),
            (
                "worker CPU per task ≤ ⅓ of stock Celery's",
                lambda: platform_["worker_cpu_ms_per_task"] <= stock["worker_cpu_ms_per_task"] / 3,
            ),
            (
                "tasks/s per worker ≥ 2x stock",
                lambda: platform_["tasks_per_s"] >= 2 * stock["tasks_per_s"],
            ),
            ("enqueue ≤ Dramatiq's", lambda: platform_["enqueue_us"] <= dramatiq["enqueue_us"]),
            ("pickup p99 ≤ stock's", lambda: (platform_["p99_ms"] or 1e9) <= stock["p99_ms"]),
            (
                "isolation ratio ≤ stock's",
                lambda: platform_["isolation_ratio"] <= stock["isolation_ratio"],
            ),
            (
                "per-unit fleet PSS ≤ stock's",
                lambda: platform_["fleet_pss_mb"] <= stock["fleet_pss_mb"],
            ),
        ],
    )
    for name in workers:
        if kind(name) == "platform" or name == "celery":
            busiest = sorted(results[name]["redis_calls_by_command"].items(), key=lambda i: -i[1])
            print(
                f"\n{name}: Redis commands per task: "
                + ", ".join(f"{command} {n:.2f}" for command, n in busiest[:8])
            )
    if fleets:
        backlog = {name: results[name]["flood_backlog_at_end"] for name in fleets}
        print(f"\nflood still queued after the flooded pickups: {backlog}")


def print_scale(results, systems):
    """Stage scale: per system, tasks/s and Redis CPU per task with 1, 2, 4 workers."""
    scaled = [name for name in systems if "scale" in results[name]]
    if not scaled:
        return
    print(
        f"\nScale-out on one queue: {', '.join(map(str, SCALE))} worker processes, each started"
        " on its own (the platform's and Celery's worker with its prefork pool, Dramatiq"
        " --processes 1 --threads 8, Huey -k process -w 1: one broker consumer each), all"
        f" serving; N={N} no-ops, tasks/s median of 3, CPU over the three runs. This machine"
        f" has {os.cpu_count()} cores: {max(SCALE)} workers on them measure contention, not"
        " scale-out; the Redis CPU per task is the figure that matters for the broker ceiling."
    )
    counts = [str(count) for count in SCALE]
    print(
        "\n| system | "
        + " | ".join(
            f"{count} worker{'s' * (count != '1')}: tasks/s | Redis CPU µs / task"
            for count in counts
        )
        + " | every task ran |"
    )
    print("|---|" + "---:|---:|" * len(counts) + "---|")
    for name in scaled:
        runs = [results[name]["scale"].get(count) for count in counts]
        cells = (
            f"{fmt(r and r['tasks_per_s'])} | {fmt(r and r['redis_cpu_us_per_task'])}" for r in runs
        )
        ran = all(r["all_ran"] for r in runs if r)
        print(f"| {name} | " + " | ".join(cells) + f" | {'yes' if ran else 'NO'} |")


# (label, results key suffix, figure, format, which way is better): this tree's platform
# beside the baseline's (BENCH_BASELINE), for "no worse than before".
COMPARED = (
    ("enqueue µs", "", "enqueue_us", ".0f", "lower"),
    ("tasks/s, median of 3", "", "tasks_per_s", ".0f", "higher"),
    ("pickup p50 ms", "", "p50_ms", ".2f", "lower"),
    ("pickup p99 ms", "", "p99_ms", ".2f", "lower"),
    ("idle worker PSS MB", "", "worker_pss_mb", ".0f", "lower"),
    ("worker CPU ms / task", "", "worker_cpu_ms_per_task", ".3f", "lower"),
    ("Redis CPU µs / task", "", "redis_cpu_us_per_task", ".1f", "lower"),
    # commandstats: a script's time includes its commands', which count on their own too.
    (
        "Redis µs in commands / task, scripts' own twice",
        "",
        "redis_command_us_per_task",
        ".1f",
        "lower",
    ),
    ("Redis commands / task", "", "redis_calls_per_task", ".2f", "lower"),
    ("of which the producer's polls (GET) / task", "", "producer_polls_per_task", ".2f", ""),
    ("Redis commands / task less those polls", "", "calls_less_polls_per_task", ".2f", "lower"),
    ("fleet idle RSS MB", "", "fleet_rss_mb", ".0f", "lower"),
    ("fleet idle PSS MB", "", "fleet_pss_mb", ".0f", "lower"),
    (f"fleet PSS MB after {LOAD} no-ops per queue", "", "fleet_loaded_pss_mb", ".0f", "lower"),
    ("start → 5 pings s", "", "start_to_5_pings_s", ".1f", "lower"),
    ("restart workers → 5 pings s", "", "restart_to_5_pings_s", ".1f", "lower"),
    ("cert pickup p99, others flooded, ms", "", "flooded_p99_ms", ".1f", "lower"),
    ("isolation ratio", "", "isolation_ratio", ".1f", "lower"),
    ("make run fleet idle PSS MB", "_dev", "fleet_pss_mb", ".0f", "lower"),
    ("make run fleet PSS MB after load", "_dev", "fleet_loaded_pss_mb", ".0f", "lower"),
    ("make run -c 2 fleet idle PSS MB", "_dev_c2", "fleet_pss_mb", ".0f", "lower"),
    ("make run -c 2 fleet PSS MB after load", "_dev_c2", "fleet_loaded_pss_mb", ".0f", "lower"),
    # Stage scale's, flattened by with_derived ("scale4_tasks_per_s", …).
    *(
        (f"{label}, workers on one queue: {count}", "", f"scale{count}_{figure}", spec, better)
        for count in SCALE
        for label, figure, spec, better in (
            ("tasks/s", "tasks_per_s", ".0f", "higher"),
            ("Redis CPU µs / task", "redis_cpu_us_per_task", ".1f", "lower"),
        )
    ),
)


def with_derived(figures):
    """``figures`` with the Redis commands per task the producer's polls left out, and
    stage scale's figures flat ("scale<count>_<figure>")."""
    derived = {
        f"scale{count}_{figure}": value
        for count, scaled in figures.get("scale", {}).items()
        for figure, value in scaled.items()
    }
    if "producer_polls_per_task" in figures:
        net = figures["redis_calls_per_task"] - figures["producer_polls_per_task"]
        derived["calls_less_polls_per_task"] = net
    return {**figures, **derived}


def print_comparison(results, systems):
    """This tree's platform beside the baseline's, figure by figure, with the ratio."""
    base = next((name for name in systems if name.startswith(PREFIX)), None)
    if base is None or "platform" not in systems:
        return
    print(f"\n| platform: this tree vs {base} | {base} | platform | ratio | better |")
    print("|---|---:|---:|---:|---|")
    for label, suffix, figure, spec, better in COMPARED:
        then, now = (
            with_derived(results.get(f"{base}{suffix}", {})),
            with_derived(results.get(f"platform{suffix}", {})),
        )
        if figure in then and figure in now:
            print(
                f"| {label} | {fmt(then[figure], spec)} | {fmt(now[figure], spec)} | "
                f"{ratio(now[figure], then[figure])} | {better} |"
            )
    then, now = (results.get(name, {}) for name in (base, "platform"))
    calls = [figures.get("redis_calls_by_command", {}) for figures in (then, now)]
    usec = [figures.get("redis_us_by_command", {}) for figures in (then, now)]
    most = {command: max(c.get(command, 0) for c in calls) for command in {*calls[0], *calls[1]}}
    shown = sorted((command for command in most if most[command] >= 0.01), key=lambda c: -most[c])
    if shown:
        print(
            f"\n| Redis, by command | commands / task: {base} | platform"
            f" | µs in the command / task: {base} | platform |"
        )
        print("|---|---:|---:|---:|---:|")
    for command in shown:
        label = "get (with the producer's polls)" if command == "get" else command
        print(
            f"| {label} | {calls[0].get(command, 0):.2f} | {calls[1].get(command, 0):.2f} | "
            + " | ".join(fmt(u.get(command), ".2f") for u in usec)
            + " |"
        )


KINDS = ("worker parent", "pool child", "beat", "flower", "supervisor")


def memory_fleets(results, systems):
    """(results key, label) of every fleet measured: each platform tree's, then stock's."""
    fleets = []
    for name in systems:
        if kind(name) == "platform":
            fleets += [
                (
                    f"{name}_dev",
                    f"{name}, make run (forked from one preloaded parent, 1 pool process)",
                ),
                (f"{name}_dev_c2", f"{name}, make run -c 2 (2 pool processes, as stock)"),
                (name, f"{name}, one process per unit (as systemd runs it)"),
            ]
        elif name == "celery":
            fleets.append((name, "stock Celery (5 workers, beat, Flower)"))
    return [(key, label) for key, label in fleets if "fleet_pss_mb" in results.get(key, {})]


def print_memory(results, systems):
    stock = results.get("celery", {})
    fleets = memory_fleets(results, systems)
    if not fleets:
        return
    print(f"\n| fleet PSS MB | idle (vs stock) | after {LOAD} no-ops per queue (vs stock) |")
    print("|---|---:|---:|")
    for name, label in fleets:
        r = results[name]
        vs_stock = ratio(r["fleet_pss_mb"], stock.get("fleet_pss_mb"))
        print(
            f"| {label} | {r['fleet_pss_mb']:.0f} ({vs_stock})"
            f" | {r['fleet_loaded_pss_mb']:.0f}"
            f" ({ratio(r['fleet_loaded_pss_mb'], stock.get('fleet_loaded_pss_mb'))}) |"
        )
    print("\n| PSS MB (processes) by kind | " + " | ".join(KINDS) + " |")
    print("|---|" + "---:|" * len(KINDS))
    for name, label in fleets:
        for state in ("idle", "loaded"):
            by_kind = results[name][f"fleet_{state}_by_kind"]
            cells = (
                f"{by_kind[each]['pss_mb']:.0f} ({by_kind[each]['processes']})"
                if each in by_kind
                else "-"
                for each in KINDS
            )
            print(f"| {label}, {state} | " + " | ".join(cells) + " |")
    print_targets(
        "memory target",
        [
            (
                "make run fleet idle PSS ≤ 0.5x stock",
                lambda: results["platform_dev"]["fleet_pss_mb"] <= 0.5 * stock["fleet_pss_mb"],
            ),
            (
                "make run fleet PSS after load ≤ 0.6x stock",
                lambda: (
                    results["platform_dev"]["fleet_loaded_pss_mb"]
                    <= 0.6 * stock["fleet_loaded_pss_mb"]
                ),
            ),
            (
                "per-unit fleet idle PSS ≤ 0.5x stock",
                lambda: results["platform"]["fleet_pss_mb"] <= 0.5 * stock["fleet_pss_mb"],
            ),
        ],
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--print"]:  # the tables again, from a run's results.json
        print_table(json.loads(Path(sys.argv[2]).read_text()))
    else:
        main()
