import logging
import os
import re

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from platform_core.broker import clients
from platform_core.config.env import read_secret
from platform_core.config.environment import DEFAULTS, environment
from platform_core.observe import flower_fence, metrics
from platform_core.processes.launcher import (
    celery_argv,
    require_celery_on,
    run_celery,
    wait_for_broker,
)

logger = logging.getLogger(__name__)

CREDENTIALS = re.compile(r"^[^:,\s]+:[^,\s]{8,}$")
# Where Flower listens unless FLOWER_ADDRESS / FLOWER_PORT say otherwise; the metrics
# port listens on the same address by default (PLATFORM_METRICS_ADDRESS).
# Task events Flower holds in memory (FLOWER_MAX_TASKS): unbounded, they grow until
# Flower is killed.


class Command(BaseCommand):
    help = (
        f"Start Flower on {DEFAULTS.flower_address}:{DEFAULTS.flower_port} with basic auth, "
        f"and the platform's metrics on {DEFAULTS.metrics_address}:{DEFAULTS.metrics_port}"
        "/metrics "
        "(PLATFORM_METRICS_AUTH). Credentials come from "
        "FLOWER_BASIC_AUTH / PLATFORM_METRICS_AUTH or the files named by *_FILE, never "
        "from argv."
    )

    def add_arguments(self, parser):
        env = environment()
        parser.add_argument("--address", default=env.flower_address)
        parser.add_argument("--port", type=int, default=env.flower_port)
        parser.add_argument("--broker-wait", type=float, default=0)
        parser.add_argument("--metrics-address", default=env.metrics_address)
        parser.add_argument("--metrics-port", type=int, default=env.metrics_port)

    def handle(self, *args, **options):
        require_celery_on()
        credentials = read_secret("FLOWER_BASIC_AUTH")
        if not CREDENTIALS.match(credentials):
            raise CommandError(
                "FLOWER_BASIC_AUTH is not set (or not user:password with a password of 8+ "
                "characters). Set FLOWER_BASIC_AUTH=user:password in the environment, or "
                "FLOWER_BASIC_AUTH_FILE=/path/to/file holding user:password (mode 0600)."
            )
        metrics_credentials = read_secret("PLATFORM_METRICS_AUTH")
        if metrics_credentials and not CREDENTIALS.match(metrics_credentials):
            raise CommandError(
                "PLATFORM_METRICS_AUTH is not user:password with a password of 8+ characters; "
                "set it (or PLATFORM_METRICS_AUTH_FILE) to the credentials the monitoring "
                "host scrapes with, or unset it to serve no metrics port"
            )
        wait_for_broker(options["broker_wait"])
        self._start_metrics(options, metrics_credentials)
        site = settings.SITE_NAME
        argv = celery_argv(
            site, "flower", f"--address={options['address']}", f"--port={options['port']}"
        )
        extra_env = {
            # Flower reads FLOWER_* variables; the secret never appears in `ps`.
            "FLOWER_BASIC_AUTH": credentials,
            "FLOWER_MAX_TASKS": str(environment().flower_max_tasks),
            "FLOWER_PERSISTENT": "False",
        }
        os.environ.pop("FLOWER_BASIC_AUTH_FILE", None)
        run_celery(argv, f"sites.{site}.settings", reload=False, extra_env=extra_env)

    def _start_metrics(self, options, credentials) -> None:
        # Flower runs in this process: its /metrics and the metrics port both serve
        # the default registry, where the platform's collector joins Flower's own.
        flower_fence.require_credentials_for_metrics()
        url = settings.PLATFORM_METRICS_BROKER_URL  # the read-only metrics user's
        metrics.register(
            clients.connect(url), clients.sentinels(url), settings.PLATFORM_BROKER_MASTER_NAME
        )
        if not credentials:
            logger.warning(
                "No metrics port: PLATFORM_METRICS_AUTH is not set. Flower's /metrics "
                "(with Flower's credentials) still includes the platform's metrics."
            )
            return
        address, port = options["metrics_address"], options["metrics_port"]
        try:
            metrics.serve(address, port, credentials)
        except OSError as exc:
            raise CommandError(
                f"Cannot serve metrics on {address}:{port}: {exc}. Set "
                "PLATFORM_METRICS_ADDRESS / PLATFORM_METRICS_PORT to a free address."
            ) from None
        logger.info("Platform metrics on http://%s:%d/metrics (basic auth)", address, port)
