"""Send probe tasks through the broker and print who ran them (deploy checks)."""

import json

from django.core.management.base import BaseCommand, CommandError

from platform_core.config.queues import QUEUES
from platform_core.tasks.registry import platform_apps


class Command(BaseCommand):
    help = "Send N probe tasks to each queue; print a JSON line per queue: who ran them."

    def add_arguments(self, parser):
        parser.add_argument("--queue", action="append", choices=QUEUES, help="default: all queues")
        parser.add_argument("--count", type=int, default=1)
        parser.add_argument("--timeout", type=float, default=30)

    def handle(self, *args, **options):
        apps = platform_apps()
        for queue in options["queue"] or QUEUES:
            app = apps[queue]
            if app.conf.task_always_eager:
                raise CommandError("USE_CELERY is off: a probe would run here, not on a worker")
            name = f"celery_tasks.{queue}.probe.whoami"
            results = [app.send_task(name) for _ in range(options["count"])]
            try:
                answers = [result.get(timeout=options["timeout"]) for result in results]
            except Exception as exc:
                raise CommandError(
                    f"probe on {queue} got no answer: {type(exc).__name__}: {exc}"
                ) from None
            self.stdout.write(
                json.dumps(
                    {
                        "queue": queue,
                        "hosts": sorted({answer["hostname"] for answer in answers}),
                        "workers": sorted({answer["worker"] for answer in answers}),
                        "sites": sorted({answer["site"] for answer in answers}),
                    }
                )
            )
