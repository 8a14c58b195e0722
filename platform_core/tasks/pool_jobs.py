"""Tasks handed to the pool run even when the consumer reconnects.

Celery's consumer, on losing its broker connection, flushes the prefork pool
(``Consumer.on_close`` → ``TaskPool.flush``): jobs no child has reported started are
discarded — those still in the outbound buffer never run, those already written to a
child run but their results and acknowledgements are dropped — on the premise that the
broker redelivers every unacknowledged message. The platform does not: a living worker
keeps what it holds across a reconnect (its lease is per process), acknowledges what ran
through the next connection, and hands back only what it had not handed to its pool
(broker.qos.restore_unacked). So the flush is switched off: every job in the pool runs
and is acknowledged once, and none is both run here and handed to another worker.

fence: celery-pool-flush (platform_core/config/fences.py)
"""

from celery import bootsteps


class KeepPoolJobs(bootsteps.StartStopStep):
    """Worker step, after the pool has started (TaskPool.on_start sets ``flush``)."""

    requires = ("celery.worker.components:Pool",)

    def start(self, worker):
        if worker.pool is not None:
            worker.pool.flush = None  # Consumer.on_close calls it only when set


def install(app) -> None:
    app.steps["worker"].add(KeepPoolJobs)
