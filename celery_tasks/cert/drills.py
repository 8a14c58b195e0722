"""Fault drills on the cert queue (see platform_core.tasks.drills).

Loaded only where PLATFORM_DRILLS is on (platform_core.config.drills).
"""

from platform_core.tasks.drills import kill_own_process, record_execution
from sites.cert.celery_app import cert_app


@cert_app.task(bind=True)
def record(self, token: str, seconds: float = 0) -> int:
    return record_execution(token, self.request.id, seconds)


@cert_app.task(bind=True, max_retries=1)
def retry_once(self, token: str, countdown: float) -> int:
    """Retries itself once after ``countdown`` seconds, then records (delay drills)."""
    if not self.request.retries:
        raise self.retry(countdown=countdown)
    return record_execution(token, self.request.id, 0)


@cert_app.task
def kill_worker() -> None:
    """Kills the pool process running it, every time: a poison message."""
    kill_own_process()


@cert_app.task(bind=True, unique_for=30)
def record_unique(self, token: str, seconds: float = 0) -> int:
    """A unique task (tasks.unique): one per token at a time, for at most 30 s."""
    return record_execution(token, self.request.id, seconds)


@cert_app.task(bind=True, unique_for=30, unique_until="window")
def record_unique_per_window(self, token: str, seconds: float = 0) -> int:
    """A unique task kept for its whole window: once per token per 30 s."""
    return record_execution(token, self.request.id, seconds)


@cert_app.task(bind=True, global_rate_limit="20/s")
def record_limited(self, token: str, seconds: float = 0) -> int:
    """Rate-limited across every worker and host (broker.rate_limits): 20 a second."""
    return record_execution(token, self.request.id, seconds)
