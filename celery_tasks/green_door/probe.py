"""Which worker, host and settings ran this: used by tests and by deploy checks."""

from platform_core.tasks.probe import describe_worker
from sites.green_door.celery_app import green_door_app


@green_door_app.task
def whoami():
    return describe_worker()
