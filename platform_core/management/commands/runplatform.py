"""Development: run the whole platform in the foreground (workers, beat, Flower, redis)."""

import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from platform_core.broker import acl, clients
from platform_core.config.env import redacted
from platform_core.config.environment import DEFAULTS, environment
from platform_core.config.queues import (
    DEFAULT_LONG_RUNNING_SITE,
    LONG_RUNNING,
    SITES,
    WORKER_COMMANDS,
)
from platform_core.processes import dev_users
from platform_core.processes.launcher import require_celery_on

DEV_CONCURRENCY = 1
# Task events Flower keeps in memory in development (deployed: runflower's default):
# after 5000 tasks per queue Flower held 102 MB PSS with 10000, measured.
DEV_FLOWER_MAX_TASKS = 1000

# Ctrl-C: give running tasks this long to finish (warm shutdown) before SIGKILL.
STOP_GRACE_SECONDS = 60

# The worker that runs beat in development.
BEAT_HOST = DEFAULT_LONG_RUNNING_SITE


def _redis_reachable(url: str) -> bool:
    client = clients.connect(url, probe=True)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class Command(BaseCommand):
    help = "Run all five workers, beat and Flower (and redis-server if none is reachable)."

    def add_arguments(self, parser):
        parser.add_argument(
            "-c",
            "--concurrency",
            type=int,
            default=DEV_CONCURRENCY,
            help=f"pool processes per worker (default {DEV_CONCURRENCY}: one task at a time per "
            "queue is enough on a developer's machine, and each process costs ~10 MB)",
        )
        parser.add_argument("--reload", action="store_true", help="restart on code changes")
        parser.add_argument("--flower-port", type=int, default=DEFAULTS.flower_port)
        parser.add_argument(
            "--acl",
            action="store_true",
            help="start redis-server with the platform's ACL users (broker.acl) and run each "
            "process as its own user, as deployed hosts do: see the same refusals",
        )

    def handle(self, *args, **options):
        try:
            import honcho  # noqa: F401 - the dev fleet's supervisor
        except ImportError:
            raise CommandError(
                "runplatform needs honcho: pip install -r requirements/run.lock"
            ) from None
        require_celery_on()
        var = Path(settings.VAR_DIR)
        env = {**os.environ, "USE_CELERY": "1", "PYTHONUNBUFFERED": "1"}
        # Each process picks its own site's settings, as `manage.py <command>` would.
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.setdefault("FLOWER_BASIC_AUTH_FILE", str(self._flower_credentials(var)))
        env.setdefault("FLOWER_MAX_TASKS", str(DEV_FLOWER_MAX_TASKS))
        # In development the metrics port (127.0.0.1) takes Flower's credentials too.
        if not (env.get("PLATFORM_METRICS_AUTH") or env.get("PLATFORM_METRICS_AUTH_FILE")):
            env["PLATFORM_METRICS_AUTH_FILE"] = env["FLOWER_BASIC_AUTH_FILE"]
        port = options["flower_port"]
        spec = {
            "env": env,
            "stop_grace_seconds": STOP_GRACE_SECONDS,
            "processes": self._processes(options),
            "banner": (
                f"Flower: http://127.0.0.1:{port} (user:password in "
                f"{env['FLOWER_BASIC_AUTH_FILE']}); metrics: "
                f"http://127.0.0.1:{environment().metrics_port}"
                f"/metrics; sites: {', '.join(SITES)}; "
                f"broker {redacted(settings.CELERY_BROKER_URL)}"
            ),
        }
        fd, spec_path = tempfile.mkstemp(prefix="devfleet-", suffix=".json", dir=var)
        with os.fdopen(fd, "w") as handle:  # mode 0600: the environment may hold secrets
            json.dump(spec, handle)
        sys.stdout.flush()
        argv = [sys.executable, "-m", "platform_core.processes.devfleet", spec_path]
        os.execve(sys.executable, argv, {**env, "PYTHONPATH": str(settings.BASE_DIR)})  # noqa: S606 - becomes the fleet: Ctrl-C reaches it

    def _processes(self, options) -> list[dict]:
        """Redis (if none runs) as a shell command; the rest as management commands,
        forked from the dev fleet's preloaded parent (platform_core.processes.devfleet)."""
        processes = []
        var = Path(settings.VAR_DIR)
        users = dev_users.prepare(var) if options["acl"] else None
        redis_cmd = self._redis_command(var, users)
        if redis_cmd:
            processes.append({"name": "redis", "command": redis_cmd})
        common = ["--broker-wait", "30"] + (["--reload"] if options["reload"] else [])
        for queue, command in WORKER_COMMANDS.items():
            concurrency = 1 if queue == LONG_RUNNING else options["concurrency"]
            argv = [command, "-c", str(concurrency), *common]
            if queue == BEAT_HOST and not users:
                # Beat forked from this worker (Celery's -B): it shares the worker's
                # memory (~25 MB less than a process of its own); same scheduler class,
                # same leader lock as a deployed beat.
                argv.append("--beat")
            processes.append({"name": queue, "command": argv, "user": acl.worker_user(queue)})
        if users:  # beat logs in as beat: a process of its own, as deployed
            processes.append({"name": "beat", "command": ["runbeat", *common], "user": acl.BEAT})
        flower = ["runflower", "--port", str(options["flower_port"]), "--broker-wait", "30"]
        processes.append({"name": "flower", "command": flower, "user": acl.FLOWER})
        for process in processes:
            user = process.pop("user", None)
            if users and user:
                process["env"] = users.env(user)
                if user == acl.FLOWER:
                    process["env"].update(users.env(acl.METRICS, "PLATFORM_METRICS_"))
        return processes

    def _redis_command(self, var: Path, users: "dev_users.DevUsers | None") -> str | None:
        url = settings.CELERY_BROKER_URL
        if _redis_reachable(url):
            if users:
                raise CommandError(
                    f"A Redis already answers at {redacted(url)}; --acl starts its own with "
                    "the platform's users: stop that one, or set REDIS_URL to a free port."
                )
            return None
        parts = urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise CommandError(f"Cannot reach {redacted(url)}; set CELERY_BROKER_URL/REDIS_URL.")
        if not shutil.which("redis-server"):
            raise CommandError("No redis-server; install it: apt-get install redis-server")
        data = var / "redis"
        data.mkdir(parents=True, exist_ok=True)
        # Same durability as deployed hosts: AOF fsync'd every second, no eviction.
        return (
            f"redis-server --port {parts.port or 6379} --bind 127.0.0.1 --dir {data} "
            "--appendonly yes --appendfsync everysec --maxmemory-policy noeviction --save ''"
            + (f" --aclfile {users.aclfile}" if users else "")
        )

    def _flower_credentials(self, var: Path) -> Path:
        path = var / "flower-credentials"
        if not path.exists():
            var.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"admin:{secrets.token_urlsafe(18)}\n")
        return path
