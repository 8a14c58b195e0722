"""Celery's Redis result backend, subscribing to a result only when someone waits for it.

Stock Celery subscribes to every task's result channel inside ``apply_async``: one
extra Redis round trip per enqueue (~150 µs), and a subscription kept for every task a
web process sends even though it never reads the result. Here ``AsyncResult.get()``
subscribes first and then reads the stored result (Celery's own order in
``add_pending_result`` → ``on_wait_for_pending``), so no result is missed.
"""

from celery.app import backends
from celery.backends.redis import RedisBackend


class LazyRedisBackend(RedisBackend):
    def on_task_call(self, producer, task_id):
        return {}


def install() -> None:
    """Make redis:// and rediss:// result URLs use the lazy backend in this process."""
    backends.BACKEND_ALIASES["redis"] = "platform_core.tasks.results:LazyRedisBackend"
    backends.BACKEND_ALIASES["rediss"] = "platform_core.tasks.results:LazyRedisBackend"
