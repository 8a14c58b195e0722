"""Development: run the whole platform in the foreground (workers, beat, Flower, redis)."""

import os
import secrets
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from platform_core.launcher import redacted, require_celery_on
from platform_core.queues import LONG_RUNNING, SITES, WORKER_COMMANDS

# Ctrl-C: give running tasks this long to finish (warm shutdown) before SIGKILL.
STOP_GRACE_SECONDS = 60


def _redis_reachable(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class Command(BaseCommand):
    help = "Run all five workers, beat and Flower (and redis-server if none is reachable)."

    def add_arguments(self, parser):
        parser.add_argument("-c", "--concurrency", type=int, default=2, help="per site worker")
        parser.add_argument("--reload", action="store_true", help="restart on code changes")
        parser.add_argument("--flower-port", type=int, default=5555)

    def handle(self, *args, **options):
        try:
            import honcho.manager
            from honcho.manager import Manager
            from honcho.printer import Printer
        except ImportError:
            raise CommandError(
                "runplatform needs the dev tools: pip install -r requirements/dev.lock"
            ) from None
        require_celery_on()
        var = Path(settings.VAR_DIR)
        env = {**os.environ, "USE_CELERY": "1", "PYTHONUNBUFFERED": "1"}
        env.setdefault("FLOWER_BASIC_AUTH_FILE", str(self._flower_credentials(var)))

        honcho.manager.KILL_WAIT = STOP_GRACE_SECONDS  # honcho's default is 5 s
        manager = Manager(Printer(sys.stdout))
        redis_cmd = self._redis_command(var)
        if redis_cmd:
            manager.add_process("redis", redis_cmd, env=env)
        manage = f"{sys.executable} {Path(settings.BASE_DIR) / 'manage.py'}"
        common = "--broker-wait 30" + (" --reload" if options["reload"] else "")
        for queue, command in WORKER_COMMANDS.items():
            concurrency = 1 if queue == LONG_RUNNING else options["concurrency"]
            manager.add_process(queue, f"{manage} {command} -c {concurrency} {common}", env=env)
        manager.add_process("beat", f"{manage} runbeat {common}", env=env)
        port = options["flower_port"]
        manager.add_process("flower", f"{manage} runflower --port {port} --broker-wait 30", env=env)
        self.stdout.write(
            f"Flower: http://127.0.0.1:{port} (user:password in {env['FLOWER_BASIC_AUTH_FILE']}); "
            f"sites: {', '.join(SITES)}; broker {redacted(settings.CELERY_BROKER_URL)}"
        )
        manager.loop()
        sys.exit(manager.returncode)

    def _redis_command(self, var: Path) -> str | None:
        url = settings.CELERY_BROKER_URL
        if _redis_reachable(url):
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
        )

    def _flower_credentials(self, var: Path) -> Path:
        path = var / "flower-credentials"
        if not path.exists():
            var.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(f"admin:{secrets.token_urlsafe(18)}\n")
        return path
