"""Routing by task name, so ``send_task`` from any site lands on the owner's queue."""

from django.conf import settings

from platform_core.config.queues import Limits, QueuePolicy, policy_for, queue_for_task_name


def route_by_task_name(name, args, kwargs, options, task=None, **kw):
    """Celery router: ``celery_tasks.<queue>.…`` goes to ``<queue>``."""
    queue = queue_for_task_name(name)
    return {"queue": queue} if queue else None


def policy(queue: str) -> QueuePolicy:
    return policy_for(
        queue,
        Limits(
            site_time_limit=settings.PLATFORM_SITE_TASK_TIME_LIMIT,
            long_time_limit=settings.PLATFORM_LONG_TASK_TIME_LIMIT,
            site_prefetch_multiplier=settings.PLATFORM_SITE_PREFETCH_MULTIPLIER,
        ),
    )
