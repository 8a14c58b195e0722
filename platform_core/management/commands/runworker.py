from django.core.management.base import CommandError

from platform_core.queues import QUEUES
from platform_core.worker_command import WorkerCommand


class Command(WorkerCommand):
    """`runworker <queue>`: the form systemd's template unit uses (celery-worker@<queue>)."""

    queue = "<queue>"

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
