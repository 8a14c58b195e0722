"""Which worker, host and settings ran this: used by tests and by deploy checks."""

from platform_core.tasks.probe import describe_worker
from sites.cert.celery_app import cert_app


@cert_app.task
def whoami():
    return describe_worker()
