"""Every queue's Celery app, by queue: what commands and checks that span sites use."""

from celery import Celery
from celery.utils.imports import symbol_by_name

from platform_core.config.queues import QUEUES, app_path


def platform_apps() -> dict[str, Celery]:
    # The long-running app lives under sites/long_running/ like a site's.
    return {queue: symbol_by_name(app_path(queue)) for queue in QUEUES}
