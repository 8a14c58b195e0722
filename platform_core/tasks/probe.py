"""What a probe task reports about the process that ran it."""

import os
import socket

from celery import current_task
from django.conf import settings


def describe_worker() -> dict:
    return {
        "site": settings.SITE_NAME,
        "settings_module": os.environ.get("DJANGO_SETTINGS_MODULE"),
        "queue": current_task.app.conf.task_default_queue,
        "hostname": socket.gethostname(),
        "worker": current_task.request.hostname,
        "pid": os.getpid(),
    }
