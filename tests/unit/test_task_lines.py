"""Where Celery's per-task lines are off, a retry still gets its line."""

import logging
from types import SimpleNamespace

from celery import signals

from platform_core.tasks import task_lines


def test_per_task_loggers_are_quiet_only_when_off():
    assert {entry["level"] for entry in task_lines.per_task_loggers(False).values()} == {"WARNING"}
    assert {entry["level"] for entry in task_lines.per_task_loggers(True).values()} == {"NOTSET"}


class RetriedTask:  # a signal's sender must be hashable
    name = "celery_tasks.pqs.x.y"


def test_a_retry_is_logged_when_celerys_lines_are_off(caplog):
    task_lines.install(False)
    try:
        with caplog.at_level(logging.INFO, logger=task_lines.__name__):
            signals.task_retry.send(
                sender=RetriedTask,
                request=SimpleNamespace(id="abc"),
                reason="Retry in 5s: ConnectionError()",
            )
    finally:
        signals.task_retry.disconnect(dispatch_uid=task_lines.__name__)
    assert caplog.messages == [
        "Task celery_tasks.pqs.x.y[abc] retry: Retry in 5s: ConnectionError()"
    ]
