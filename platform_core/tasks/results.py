"""Celery's Redis result backend, subscribing to a result only when someone waits for it.

Stock Celery subscribes to every task's result channel inside ``apply_async``: one
extra Redis round trip per enqueue (~150 µs), and a subscription kept for every task a
web process sends even though it never reads the result. Here ``AsyncResult.get()``
subscribes first and then reads the stored result (Celery's own order in
``add_pending_result`` → ``on_wait_for_pending``), so no result is missed.

fence: celery-result-backend (platform_core/config/fences.py). Installed per app through
Celery's hook, the app loader's ``override_backends`` (``celery.app.backends.by_name``
consults it), so Celery's global ``BACKEND_ALIASES`` and any other app in the process
(e.g. a plain Celery client) are left as they are.
"""

from celery.backends.redis import RedisBackend

LAZY_BACKEND = "platform_core.tasks.results:LazyRedisBackend"


class LazyRedisBackend(RedisBackend):
    def on_task_call(self, producer, task_id):
        return {}


def install(app) -> None:
    """Make ``app``'s redis:// and rediss:// result URLs use the lazy backend."""
    loader = app.loader
    # A new dict on the instance: BaseLoader.override_backends is one class-level dict.
    loader.override_backends = {
        **loader.override_backends,
        "redis": LAZY_BACKEND,
        "rediss": LAZY_BACKEND,
    }
