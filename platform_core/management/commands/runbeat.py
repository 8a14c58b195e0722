from django.conf import settings
from django.core.management.base import BaseCommand

from platform_core.processes.launcher import (
    celery_argv,
    require_celery_on,
    run_celery,
    wait_for_broker,
)


class Command(BaseCommand):
    help = (
        "Start Celery beat with the database scheduler. A second beat started anywhere "
        "waits on standby (Redis leader lock) and never sends a task twice."
    )

    def add_arguments(self, parser):
        parser.add_argument("-l", "--loglevel", default="INFO")
        parser.add_argument("--reload", action="store_true", help="restart when code changes")
        parser.add_argument("--broker-wait", type=float, default=0)

    def handle(self, *args, **options):
        require_celery_on()
        wait_for_broker(options["broker_wait"])
        site = settings.SITE_NAME
        argv = celery_argv(site, "beat", "--loglevel", options["loglevel"])
        run_celery(argv, f"sites.{site}.settings", reload=options["reload"])
