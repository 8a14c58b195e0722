import os
import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from platform_core.env import read_secret
from platform_core.launcher import celery_argv, require_celery_on, run_celery, wait_for_broker

CREDENTIALS = re.compile(r"^[^:,\s]+:[^,\s]{8,}$")


class Command(BaseCommand):
    help = (
        "Start Flower on 127.0.0.1:5555 with basic auth. Credentials come from "
        "FLOWER_BASIC_AUTH or the file named by FLOWER_BASIC_AUTH_FILE, never from argv."
    )

    def add_arguments(self, parser):
        parser.add_argument("--address", default=os.environ.get("FLOWER_ADDRESS", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("FLOWER_PORT", "5555")))
        parser.add_argument("--broker-wait", type=float, default=0)

    def handle(self, *args, **options):
        require_celery_on()
        credentials = read_secret("FLOWER_BASIC_AUTH")
        if not CREDENTIALS.match(credentials):
            raise CommandError(
                "FLOWER_BASIC_AUTH is not set (or not user:password with a password of 8+ "
                "characters). Set FLOWER_BASIC_AUTH=user:password in the environment, or "
                "FLOWER_BASIC_AUTH_FILE=/path/to/file holding user:password (mode 0600)."
            )
        wait_for_broker(options["broker_wait"])
        site = settings.SITE_NAME
        argv = celery_argv(
            site, "flower", f"--address={options['address']}", f"--port={options['port']}"
        )
        extra_env = {
            # Flower reads FLOWER_* variables; the secret never appears in `ps`.
            "FLOWER_BASIC_AUTH": credentials,
            # Task events are held in memory: bound them (pitfalls: Flower).
            "FLOWER_MAX_TASKS": os.environ.get("FLOWER_MAX_TASKS", "10000"),
            "FLOWER_PERSISTENT": "False",
        }
        os.environ.pop("FLOWER_BASIC_AUTH_FILE", None)
        run_celery(argv, f"sites.{site}.settings", reload=False, extra_env=extra_env)
