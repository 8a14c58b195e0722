from django.core.management.base import CommandError

from platform_core.config.queues import QUEUES, WORKER_COMMANDS
from platform_core.processes.worker_command import WorkerCommand


class Command(WorkerCommand):
    """`runworker <queue>`: the form systemd's template unit uses (celery-worker@<queue>).
    `run<site>worker` and `run_long_running_worker` are this command too
    (platform_core.processes.cli)."""

    queue = "<queue>"

    @property
    def help(self):
        aliases = ", ".join(
            f"{command} = runworker {queue}" for queue, command in WORKER_COMMANDS.items()
        )
        return f"Start the Celery worker of one queue. Also: {aliases}."

    def add_arguments(self, parser):
        parser.add_argument("queue_name", metavar="queue", help=f"one of: {', '.join(QUEUES)}")
        super().add_arguments(parser)

    def handle(self, *args, **options):
        if options["queue_name"] not in QUEUES:
            raise CommandError(
                f"unknown queue {options['queue_name']!r}; use one of: {', '.join(QUEUES)}"
            )
        self.queue = options["queue_name"]
        super().handle(*args, **options)
