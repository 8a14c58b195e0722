"""The benchmark's platform tasks run on the cert worker the benchmark starts, and only
there: a cert worker started the production way does not know them.

Each worker here has a Redis database of its own, so the session's workers (other
tests, database 0) neither take these tasks nor answer these pings.
"""

import sys

import pytest
from celery import Celery

from bench.run import worker_argv
from harness.processes import Process, json_output, manage, wait_for

BENCH_TASKS = {"celery_tasks.cert.bench.noop", "celery_tasks.cert.bench.pickup"}


def database(redis_url: str, number: int) -> str:
    return f"{redis_url.rsplit('/', 1)[0]}/{number}"


def registered(url: str, node: str) -> set[str]:
    control = Celery("bench-tasks-test", broker=url)
    try:
        replies = control.control.inspect(timeout=2).registered() or {}
    finally:
        control.close()
    return {name for worker, names in replies.items() if worker.startswith(node) for name in names}


def producer(env: dict, mode: str, n: int) -> dict:
    return json_output([sys.executable, "-m", "bench.producer", "platform", mode, str(n)], env)


def start(name: str, argv: list[str], env: dict, log_dir) -> Process:
    worker = Process(name, argv, env, log_dir)
    try:
        wait_for(lambda: " ready." in worker.log(), 60, f"{name} to start")
    except AssertionError:
        worker.stop()
        print(worker.log()[-3000:])
        raise
    return worker


@pytest.fixture
def bench_env(platform_env, redis_url):
    url = database(redis_url, 5)
    return {**platform_env, "REDIS_URL": url, "BENCH_REDIS_URL": url}


def test_the_benchmarks_cert_worker_runs_noop_and_pickup(bench_env, log_dir):
    # Exactly the argv `make bench` uses, with one pool process (two cores, shared).
    bench_argv = worker_argv("platform", "cert", name="benchcert")
    assert bench_argv[-3:] == ["--", "--include", "bench.systems.platform_tasks"]
    argv = [*bench_argv, "--concurrency", "1"]
    worker = start("worker-benchcert", argv, bench_env, log_dir)
    try:
        assert BENCH_TASKS <= registered(bench_env["REDIS_URL"], "benchcert@")
        assert producer(bench_env, "pickup", 5)["samples"] == 5
        ran = producer(bench_env, "throughput", 50)
        assert ran["ran"] == ran["sent"] == 50, ran
    finally:
        worker.stop()


def test_a_cert_worker_started_the_production_way_has_no_benchmark_task(bench_env, log_dir):
    env = {**bench_env, "REDIS_URL": database(bench_env["REDIS_URL"], 6)}
    env["BENCH_REDIS_URL"] = env["REDIS_URL"]
    # As systemd's celery-worker@cert unit starts it.
    argv = manage("runworker", "cert", "-c", "1", "-n", "prodcert@%h")
    worker = start("worker-prodcert", argv, env, log_dir)
    try:
        names = registered(env["REDIS_URL"], "prodcert@")
        assert "celery_tasks.cert.drills.record" in names
        assert not BENCH_TASKS & names
        assert not [name for name in names if name.startswith("bench.")]
        # A benchmark no-op sent to it is refused as unknown, not run.
        producer(env, "enqueue", 1)
        wait_for(
            lambda: "no task 'celery_tasks.cert.bench.noop' on the cert worker" in worker.log(),
            30,
            "the unknown benchmark task to be refused",
        )
    finally:
        worker.stop()
