"""Celery's per-task log lines, off where ``PLATFORM_TASK_LOG_LINES`` is off.

Celery logs two INFO lines per task ("received", "succeeded in"): with short tasks ~8 %
of a worker's CPU (py-spy, docs/performance.md) and as many journal lines. Where the
setting is off (the default with DJANGO_ENV=production) the two loggers that write them
are set to WARNING in ``LOGGING`` (sites/base/settings.py), so Celery does not even build
them; failures are logged as before (ERROR). A retry's line is INFO in that logger too:
it is logged here instead, from Celery's ``task_retry`` signal, so retries stay visible.
"""

import logging

from celery import signals

# The loggers of Celery's per-task lines (celery.worker.strategy: received;
# celery.app.trace: succeeded, retry, and failures at ERROR).
PER_TASK_LOGGERS = ("celery.app.trace", "celery.worker.strategy")

logger = logging.getLogger(__name__)


def per_task_loggers(lines_on: bool) -> dict:
    """The LOGGING entries of those loggers."""
    level = "NOTSET" if lines_on else "WARNING"
    return {name: {"level": level} for name in PER_TASK_LOGGERS}


def _log_retry(sender=None, request=None, reason=None, **kwargs):
    logger.info("Task %s[%s] retry: %s", getattr(sender, "name", "?"), request.id, reason)


def install(lines_on: bool) -> None:
    """Where Celery's lines are off, keep a line per retry."""
    if not lines_on:
        signals.task_retry.connect(_log_retry, weak=False, dispatch_uid=__name__)
