"""Builds the Celery app of a site (or of the long-running queue).

The app module itself stays tiny (cookiecutter-django style); everything the apps
share is decided here once.
"""

from celery import Celery

from platform_core.discovery import task_modules
from platform_core.eager import apply_by_name
from platform_core.queues import queue_for_task_name
from platform_core.routing import check_countdown, policy, route_by_task_name


class PlatformCelery(Celery):
    def task(self, *args, **opts):
        # Celery adds every @app.task to *all* apps by default (shared=True): a site's
        # task would then be registered on every other site's worker too.
        opts.setdefault("shared", False)
        return super().task(*args, **opts)

    def send_task(self, name, args=None, kwargs=None, countdown=None, eta=None, **options):
        if self.conf.task_always_eager:
            return apply_by_name(name, args, kwargs, task_id=options.get("task_id"))
        check_countdown(name, options.get("queue") or queue_for_task_name(name), countdown, eta)
        return super().send_task(name, args, kwargs, countdown=countdown, eta=eta, **options)


def queue_settings(queue: str) -> dict:
    """The Celery settings that differ per queue."""
    queue_policy = policy(queue)
    transport_options = queue_policy.transport_options()
    return {
        "task_default_queue": queue,
        "task_routes": (route_by_task_name,),
        "task_soft_time_limit": queue_policy.soft_time_limit,
        "task_time_limit": queue_policy.hard_time_limit,
        "worker_prefetch_multiplier": queue_policy.prefetch_multiplier,
        "broker_transport_options": transport_options,
        # Kept equal to the broker's (pitfalls: set consistently in both).
        "result_backend_transport_options": {
            "visibility_timeout": transport_options["visibility_timeout"]
        },
    }


def create_app(queue: str) -> PlatformCelery:
    app = PlatformCelery(
        queue,
        task_cls="platform_core.task_base:PlatformTask",
        include=task_modules(queue),
    )
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(queue_settings(queue))
    return app
