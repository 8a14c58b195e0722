"""The platform's benchmark tasks: no production worker has them.

Registered on the cert site's app, and loaded only by the cert worker the benchmark
starts (``runcertworker … -- --include bench.systems.platform_tasks``, Celery's own
``--include``: ``bench.run.worker_argv``); the artifact does not even ship ``bench/``.
Named in the cert namespace, so the platform's name router sends them to the cert queue
like any cert task (the figures measure that path) and the placement check
(``platform_core.tasks.checks``) accepts them; there is no ``celery_tasks/cert/bench.py``.

On import it prints where ``platform_core`` came from: with ``BENCH_BASELINE`` the same
module runs against another revision's tree, and the harness checks the worker's log
(``bench.baseline.check_origin``).
"""

import sys

import platform_core
from bench.baseline import ORIGIN
from bench.systems.counters import count, record_pickup
from sites.cert.celery_app import cert_app

print(f"{ORIGIN}{platform_core.__file__}", file=sys.stderr, flush=True)


@cert_app.task(name="celery_tasks.cert.bench.noop")
def noop() -> None:
    """Does nothing but count itself (the run checks that every task ran)."""
    count()


@cert_app.task(name="celery_tasks.cert.bench.pickup")
def pickup(sent_at: float) -> None:
    """Records how long the task waited to be picked up."""
    record_pickup(sent_at)
