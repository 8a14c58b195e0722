"""Routing by task name, so ``send_task`` from any site lands on the owner's queue."""

from datetime import UTC, datetime

from django.conf import settings

from platform_core.queues import Limits, QueuePolicy, policy_for, queue_for_task_name


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
            site_max_countdown=settings.PLATFORM_SITE_MAX_COUNTDOWN,
            long_max_countdown=settings.PLATFORM_LONG_MAX_COUNTDOWN,
            redelivery_margin=settings.PLATFORM_REDELIVERY_MARGIN,
        ),
    )


class CountdownTooLong(ValueError):
    """A countdown/ETA longer than the queue's redelivery window would run twice."""


def check_countdown(name: str, queue: str | None, countdown, eta) -> None:
    if queue is None or (countdown is None and eta is None):
        return
    if eta is not None:
        if isinstance(eta, str):
            eta = datetime.fromisoformat(eta)
        if eta.tzinfo is None:
            eta = eta.replace(tzinfo=UTC)
        wait = (eta - datetime.now(UTC)).total_seconds()
    else:
        wait = float(countdown)
    limit = policy(queue).max_countdown
    if wait > limit:
        raise CountdownTooLong(
            f"{name}: a delay of {wait:.0f} s exceeds the {queue} queue's limit of {limit} s. "
            "Redis would hand the waiting message to a second worker and the task would run "
            "twice. Schedule it as a periodic job (manage.py periodic) instead."
        )
