"""Which worker, host and settings ran this: used by tests and by deploy checks."""

from platform_core.tasks.probe import describe_worker
from sites.pqs.celery_app import pqs_app


@pqs_app.task
def whoami():
    return describe_worker()
