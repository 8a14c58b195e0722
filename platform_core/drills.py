"""Fault drills: tasks whose every execution is recorded, so duplicates and losses show.

Operators run them to check a deployment (`manage probe` is the quick form); the
reliability tests inject faults around them.
"""

import os
import signal
import time

import redis
from django.conf import settings

EXECUTIONS_KEY = "platform:drill:{token}"
# When each task last started (this host's clock, seconds): lateness of delayed tasks.
STARTED_AT_KEY = "platform:drill:{token}:started_at"


def _client() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)


def record_execution(token: str, task_id: str, seconds: float, patience: float = 20) -> int:
    """Sleep ``seconds``, then count one execution of ``task_id`` under ``token``.

    The count is written to Redis, which a drill may be restarting: keep trying for
    ``patience`` seconds, so the drill measures the broker, not this write.
    """
    started_at = time.time()
    time.sleep(seconds)
    deadline = time.monotonic() + patience
    while True:
        client = _client()
        try:
            with client.pipeline() as pipe:
                pipe.hincrby(EXECUTIONS_KEY.format(token=token), task_id, 1)
                pipe.hset(STARTED_AT_KEY.format(token=token), task_id, repr(started_at))
                return int(pipe.execute()[0])
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
        finally:
            client.close()


def executions(token: str) -> dict[str, int]:
    client = _client()
    try:
        raw = client.hgetall(EXECUTIONS_KEY.format(token=token))
    finally:
        client.close()
    return {key.decode(): int(value) for key, value in raw.items()}


def kill_own_process() -> None:
    """What the OOM killer does to a pool process mid-task."""
    os.kill(os.getpid(), signal.SIGKILL)


_shared_client = None


def _process_client() -> redis.Redis:
    """One connection per worker process: what a benchmark's no-op may cost, no more."""
    global _shared_client
    if _shared_client is None:
        _shared_client = _client()
    return _shared_client


def count_noop() -> None:
    _process_client().incr("bench:count")


def record_pickup(sent_at: float) -> None:
    _process_client().rpush("bench:pickup", time.time() - sent_at)
