"""Cancel tasks by id: waiting or delayed ones are removed, running ones stopped."""

from django.core.management.base import BaseCommand, CommandError

from platform_core.config.queues import QUEUES
from platform_core.errors import BROKER_ERRORS, UnknownTask
from platform_core.tasks.cancellation import cancel


class Command(BaseCommand):
    help = (
        "Cancel tasks: a waiting or delayed one is removed from Redis (REVOKED), a running "
        "or reserved one is stopped by its worker through the soft time limit. Kept in "
        "Redis: a worker restarting, or a message handed back, does not bring it back."
    )

    def add_arguments(self, parser):
        parser.add_argument("task_ids", nargs="+", metavar="TASK_ID")
        parser.add_argument("--queue", choices=QUEUES, help="the task's queue (default: all)")

    def handle(self, *args, **options):
        failed = []
        for task_id in options["task_ids"]:
            try:
                self.stdout.write(f"cancelled {cancel(task_id, options['queue'])}")
            except UnknownTask as exc:
                failed.append(str(exc))
            except BROKER_ERRORS as exc:
                raise CommandError(f"the broker did not answer ({exc}); nothing more done") from exc
        if failed:
            raise CommandError("\n".join(failed))
