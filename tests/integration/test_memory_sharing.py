"""A prefork pool child keeps sharing its parent's pages (platform_core.tasks.forking).

Not timed, and not a benchmark (make bench measures the fleet): a guard that the
child's *private* memory stays a small fraction of what the parent holds, after the
child has run tasks. Before gc.freeze() one child of a fresh cert worker had 39-41 MB
private of the parent's 82 MB RSS (0.48); with it, 10-15 MB (0.12-0.18).
"""

import pytest

from harness.processes import Process, manage, wait_for
from platform_core.config.queues import WORKER_COMMANDS

# Private memory of any pool child, as a fraction of its parent's RSS.
MAX_PRIVATE_FRACTION = 0.3


def smaps_kib(pid: int) -> dict[str, int]:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        fields = (line.split() for line in rollup if line.endswith("kB\n"))
        return {parts[0].rstrip(":"): int(parts[1]) for parts in fields}


def children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as listing:
        return [int(child) for child in listing.read().split()]


@pytest.fixture
def cert_worker(platform_env, log_dir):
    argv = manage(WORKER_COMMANDS["cert"], "-c", "2", "-n", "memory@%h")
    worker = Process("worker-memory", argv, platform_env, log_dir)
    wait_for(lambda: " ready." in worker.log(), 60, "the worker to start")
    yield worker
    worker.stop()


def test_pool_children_share_the_parents_pages_after_running_tasks(cert_worker, client_app):
    from celery_tasks.cert.probe import whoami

    parent = cert_worker.popen.pid
    pool = children(parent)
    # Other tests' cert worker may share the queue: send until each child has run some.
    ran_in: dict[int, int] = {}
    for _ in range(10):
        for result in [whoami.apply_async(queue="cert") for _ in range(50)]:
            pid = result.get(timeout=30)["pid"]
            ran_in[pid] = ran_in.get(pid, 0) + 1
        if all(ran_in.get(child, 0) >= 20 for child in pool):
            break
    assert all(ran_in.get(child, 0) >= 20 for child in pool), ran_in
    parent_rss = smaps_kib(parent)["Rss"]
    for child in pool:
        memory = smaps_kib(child)
        private = memory["Private_Dirty"] + memory["Private_Clean"]
        fraction = private / parent_rss
        print(f"pool child {child}: private {private // 1024} MB of parent's {parent_rss // 1024}")
        assert fraction <= MAX_PRIVATE_FRACTION, (
            f"pool child {child} holds {private // 1024} MB of private memory, "
            f"{fraction:.0%} of its parent's {parent_rss // 1024} MB RSS "
            f"(limit {MAX_PRIVATE_FRACTION:.0%}): pages stopped being shared after fork"
        )
