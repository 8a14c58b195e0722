"""Which worker, host and settings ran this: used by tests and by deploy checks."""

from platform_core.tasks.probe import describe_worker
from sites.long_running.celery_app import long_running_app


@long_running_app.task
def whoami():
    return describe_worker()
