"""Fault drills: tasks whose every execution is recorded, so duplicates and losses show.

Operators run them to check a deployment (`manage probe` is the quick form); the
reliability tests inject faults around them. The tasks themselves live in
``celery_tasks/<queue>/drills.py``, loaded only where PLATFORM_DRILLS is on
(platform_core.config.drills).
"""

import json
import os
import signal
import socket
import time

import redis

from platform_core.broker import clients, keys

# Records under keys.drill(token, part): executions per task id (no part), "started_at"
# (when each task last started, this host's clock: lateness of delayed tasks), "starts"
# (every start of every task, in order: JSON {"task", "host", "at"}, so a drill that
# powers a host off reads which task ran where and when its re-run began elsewhere).
KEEP_SECONDS = 7 * 24 * 3600


def record_execution(token: str, task_id: str, seconds: float, patience: float = 20) -> int:
    """Sleep ``seconds``, then count one execution of ``task_id`` under ``token``.

    The count is written to Redis, which a drill may be restarting: keep trying for
    ``patience`` seconds, so the drill measures the broker, not this write.
    """
    started_at = time.time()
    _record_start(token, task_id, started_at)
    time.sleep(seconds)
    deadline = time.monotonic() + patience
    while True:
        try:
            with clients.shared().pipeline() as pipe:
                pipe.hincrby(keys.drill(token), task_id, 1)
                pipe.hset(keys.drill(token, "started_at"), task_id, repr(started_at))
                return int(pipe.execute()[0])
        except (redis.ConnectionError, redis.TimeoutError):  # gone, or gone silent
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _record_start(token: str, task_id: str, started_at: float) -> None:
    """Best effort, one try with short timeouts: a drill restarting Redis may lose a
    start record, never the task (its verdict rests on the execution count, which
    record_execution writes with patience)."""
    key = keys.drill(token, "starts")
    entry = json.dumps({"task": task_id, "host": socket.gethostname(), "at": started_at})
    client = clients.connect(probe=True)
    try:
        with client.pipeline() as pipe:
            pipe.rpush(key, entry)
            pipe.expire(key, KEEP_SECONDS)
            pipe.execute()
    except redis.RedisError:
        pass
    finally:
        client.close()


def starts(token: str) -> dict[str, list[dict]]:
    """task id -> its starts, earliest first: [{"host": ..., "at": unix time}, ...]."""
    raw = clients.shared().lrange(keys.drill(token, "starts"), 0, -1)
    found: dict[str, list[dict]] = {}
    for item in raw:
        entry = json.loads(item)
        found.setdefault(entry["task"], []).append({"host": entry["host"], "at": entry["at"]})
    for runs in found.values():
        runs.sort(key=lambda run: run["at"])
    return found


def executions(token: str) -> dict[str, int]:
    raw = clients.shared().hgetall(keys.drill(token))
    return {key.decode(): int(value) for key, value in raw.items()}


def kill_own_process() -> None:
    """What the OOM killer does to a pool process mid-task."""
    os.kill(os.getpid(), signal.SIGKILL)
