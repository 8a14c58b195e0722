"""Which worker, host and settings ran this: used by tests and by deploy checks."""

from platform_core.tasks.probe import describe_worker
from sites.api.celery_app import api_app


@api_app.task
def whoami():
    return describe_worker()
