"""Builds the Celery app of a site (or of the long-running queue).

The app module itself stays tiny (cookiecutter-django style); everything the apps
share is decided here once.
"""

from celery import Celery
from django.conf import settings
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from platform_core.broker import transport
from platform_core.broker.delays import check_delay
from platform_core.config.discovery import task_modules
from platform_core.config.env import redacted
from platform_core.config.routing import policy, route_by_task_name
from platform_core.errors import BrokerUnavailable, PlatformError
from platform_core.tasks import forking, pool_jobs, result_handback, results, task_lines
from platform_core.tasks.eager import apply_by_name


class PlatformCelery(Celery):
    def task(self, *args, **opts):
        # Celery adds every @app.task to *all* apps by default (shared=True): a site's
        # task would then be registered on every other site's worker too.
        opts.setdefault("shared", False)
        return super().task(*args, **opts)

    def send_task(self, name, args=None, kwargs=None, countdown=None, eta=None, **options):
        if self.conf.task_always_eager:
            return apply_by_name(name, args, kwargs, task_id=options.get("task_id"))
        check_delay(name, countdown, eta, settings.PLATFORM_MAX_DELAY_SECONDS)
        # Celery declares the target queue on every publish (~40 µs of kombu entity
        # copying). Tasks go to the default exchange, i.e. straight onto the queue's
        # list in Redis, which needs no declaration; workers declare their own queues.
        options.setdefault("declare", [])
        try:
            return super().send_task(name, args, kwargs, countdown=countdown, eta=eta, **options)
        except PlatformError:
            raise  # already one line saying what to do (e.g. NotReplicated)
        except (OperationalError, RedisError, RuntimeError) as exc:
            # RuntimeError: the result backend gave up reconnecting (celery.backends.redis).
            raise BrokerUnavailable(
                f"{name} was NOT enqueued: the broker at {redacted(self.conf.broker_url)} did "
                f"not answer ({exc.__class__.__name__}). "
                "Check that Redis is up and CELERY_BROKER_URL/REDIS_URL point at it."
            ) from exc


def queue_settings(queue: str) -> dict:
    """The Celery settings that differ per queue."""
    queue_policy = policy(queue)
    transport_options = {
        **queue_policy.transport_options(),
        "lease_seconds": settings.PLATFORM_LEASE_SECONDS,
        "lease_sweep_seconds": settings.PLATFORM_LEASE_SWEEP_SECONDS,
        # sentinel:// brokers (clients: the primary is found by this name).
        "master_name": settings.PLATFORM_BROKER_MASTER_NAME,
        "min_replicas": settings.PLATFORM_BROKER_MIN_REPLICAS,
        "replica_timeout_ms": settings.PLATFORM_BROKER_REPLICA_TIMEOUT_MS,
    }
    return {
        "task_default_queue": queue,
        # Task events feed Flower; an operator may switch them off per queue.
        "worker_send_task_events": settings.CELERY_WORKER_SEND_TASK_EVENTS
        and queue not in settings.PLATFORM_TASK_EVENTS_OFF,
        "task_routes": (route_by_task_name,),
        "task_soft_time_limit": queue_policy.soft_time_limit,
        "task_time_limit": queue_policy.hard_time_limit,
        "worker_prefetch_multiplier": queue_policy.prefetch_multiplier,
        "broker_transport_options": transport_options,
        "result_backend_transport_options": {
            # Kept equal to the broker's (kombu reads it from both, inconsistently); it only
            # matters to the legacy index (queues.LEGACY_INDEXES).
            "visibility_timeout": transport_options["visibility_timeout"],
            "master_name": settings.PLATFORM_BROKER_MASTER_NAME,
            # Celery's default is 20 reconnects a second apart: a web request that
            # enqueues while Redis is down would hang ~20 s, then be told to restart.
            "retry_policy": {"max_retries": 1, "interval_start": 0, "interval_step": 0.5},
        },
    }


def create_app(queue: str) -> PlatformCelery:
    transport.install()
    forking.install()
    app = PlatformCelery(
        queue,
        task_cls="platform_core.tasks.task_base:PlatformTask",
        # Fault drills only where PLATFORM_DRILLS is on (platform_core.config.drills).
        include=task_modules(queue, drills=settings.PLATFORM_DRILLS),
    )
    results.install(app)
    result_handback.install(app)
    pool_jobs.install(app)
    task_lines.install(settings.PLATFORM_TASK_LOG_LINES)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    app.conf.update(queue_settings(queue))
    return app
