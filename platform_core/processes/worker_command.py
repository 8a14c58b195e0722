"""The shared body of ``run<site>worker`` and ``run_long_running_worker``."""

from django.conf import settings
from django.core.management.base import BaseCommand

from platform_core.config.queues import worker_settings_module
from platform_core.processes.launcher import (
    celery_argv,
    require_celery_on,
    run_celery,
    wait_for_broker,
)


class WorkerCommand(BaseCommand):
    queue: str  # set by each command
    celery_args: tuple[str, ...] = ()

    def run_from_argv(self, argv):
        # Everything after `--` goes to `celery worker` untouched.
        if "--" in argv:
            split = argv.index("--")
            argv, self.celery_args = argv[:split], tuple(argv[split + 1 :])
        super().run_from_argv(argv)

    @property
    def help(self):
        return f"Start the Celery worker that consumes only the `{self.queue}` queue."

    def add_arguments(self, parser):
        parser.add_argument("-c", "--concurrency", type=int, help="pool processes (default: CPUs)")
        parser.add_argument("-l", "--loglevel", default="INFO")
        parser.add_argument("-P", "--pool", help="prefork (default), threads, solo, …")
        parser.add_argument("-n", "--hostname", help=f"node name (default: {self.queue}@%%h)")
        parser.add_argument(
            "--beat",
            action="store_true",
            help="also run beat inside this worker (development; the leader lock keeps it single)",
        )
        parser.add_argument("--reload", action="store_true", help="restart when code changes")
        parser.add_argument(
            "--broker-wait",
            type=float,
            default=0,
            help="seconds to wait for the broker before giving up (default: 0)",
        )

    def settings_module(self) -> str:
        return worker_settings_module(self.queue, settings.LONG_RUNNING_SITE)

    def handle(self, *args, **options):
        require_celery_on()
        wait_for_broker(options["broker_wait"])
        argv = celery_argv(
            self.queue,
            "worker",
            "--queues",
            self.queue,
            "--hostname",
            options["hostname"] or f"{self.queue}@%h",
            "--loglevel",
            options["loglevel"],
            # No start-up broadcast to every worker of every site (mingle: ~1 s at each
            # start and reconnect, and a worker's Redis user may not broadcast: only
            # Flower commands the workers, broker.acl).
            "--without-mingle",
        )
        if options["concurrency"]:
            argv += ["--concurrency", str(options["concurrency"])]
        if options["pool"]:
            argv += ["--pool", options["pool"]]
        if options["beat"]:
            argv += ["--beat"]
        argv += self.celery_args
        run_celery(argv, self.settings_module(), reload=options["reload"])
