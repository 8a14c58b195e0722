"""Synchronous mode (USE_CELERY off): run a task named by string in this process."""

import importlib

from celery.exceptions import NotRegistered
from django.conf import settings

from platform_core.config.drills import DRILLS_OFF, is_drill
from platform_core.config.queues import queue_for_task_name


def apply_by_name(name: str, args=None, kwargs=None, task_id=None):
    """What ``send_task`` does when there is no broker: import the task and run it.

    Task names are their module path, so the module to import follows from the name.
    """
    if queue_for_task_name(name) is None:
        raise NotRegistered(f"{name} (only celery_tasks.<queue>.… names run synchronously)")
    if is_drill(name) and not settings.PLATFORM_DRILLS:
        raise NotRegistered(f"{name} is a fault drill and {DRILLS_OFF}")
    module_name, _, attribute = name.rpartition(".")
    try:
        task = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        raise NotRegistered(name) from None
    return task.apply(args=args or (), kwargs=kwargs or {}, task_id=task_id, throw=True)
