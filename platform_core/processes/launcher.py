"""Starting Celery processes: preflight checks, then ``exec`` so signals reach Celery."""

import os
import shlex
import sys
import time
from pathlib import Path

import redis
from django.conf import settings
from django.core.management.base import CommandError

from platform_core.broker import clients
from platform_core.config.env import redacted
from platform_core.config.queues import app_path

WATCHED_PACKAGES = ("sites", "celery_tasks", "platform_core", "records")


def require_celery_on() -> None:
    if not settings.USE_CELERY:
        raise CommandError(
            "USE_CELERY is off, so tasks run synchronously in the caller and a worker would "
            "get nothing. Set USE_CELERY=1 to run workers."
        )


def wait_for_broker(wait_seconds: float) -> None:
    """Fail with the setting to fix, instead of a traceback from deep inside kombu."""
    url = settings.CELERY_BROKER_URL
    deadline = time.monotonic() + wait_seconds
    while True:
        client = clients.connect(url)
        try:
            client.ping()
            return
        except redis.AuthenticationError as exc:
            raise CommandError(
                f"The broker at {redacted(url)} refused our credentials ({exc}). "
                "Fix the password in CELERY_BROKER_URL (or REDIS_URL)."
            ) from None
        except redis.RedisError as exc:
            if time.monotonic() >= deadline:
                raise CommandError(
                    f"Cannot reach the broker at {redacted(url)}: {exc}. Start redis-server, "
                    "or set CELERY_BROKER_URL (or REDIS_URL) to a reachable Redis."
                ) from None
            time.sleep(0.5)
        finally:
            client.close()


def tool_argv(tool: str) -> list[str]:
    """How to start ``celery``/``watchfiles``: through the .pyz if we run from one."""
    entry = os.environ.get("PLATFORM_ENTRY")
    if entry and entry.endswith(".pyz"):
        return [sys.executable, entry, tool]
    return [sys.executable, "-m", tool]


def celery_argv(queue: str, *args: str) -> list[str]:
    return [*tool_argv("celery"), "-A", app_path(queue), *args]


def run_celery(argv: list[str], settings_module: str, *, reload: bool, extra_env=None):
    """Become Celery: in this process when Django already runs under ``settings_module``
    (one interpreter start instead of two: the fleet restarts in half the time),
    else by ``exec`` (same PID, so signals still reach Celery)."""
    tool = tool_argv("celery")
    if (
        not reload
        and os.environ.get("DJANGO_SETTINGS_MODULE") == settings_module
        and argv[: len(tool)] == tool
    ):
        from celery.bin.celery import main as celery_main

        os.environ.update(extra_env or {})
        sys.argv = ["celery", *argv[len(tool) :]]
        celery_main()  # exits
    exec_celery(argv, settings_module, reload=reload, extra_env=extra_env)


def exec_celery(argv: list[str], settings_module: str, *, reload: bool, extra_env=None):
    """Replace this process with Celery (or with a reloader that runs Celery)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, **(extra_env or {})}
    if reload:
        root = Path(settings.BASE_DIR)
        argv = [
            # Through the .pyz when we run from one: Debian's python3 has no watchfiles
            # (found by booting the Vagrant box: every --reload worker failed to start).
            *tool_argv("watchfiles"),
            "--filter",
            "python",
            # Warm shutdown on change: running tasks get this long to finish.
            "--sigint-timeout",
            "30",
            shlex.join(argv),
            *(str(root / package) for package in WATCHED_PACKAGES),
        ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv[0], argv, env)  # noqa: S606 - exec on purpose: signals reach Celery
