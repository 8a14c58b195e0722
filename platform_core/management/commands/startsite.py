"""``manage.py startsite NAME``: a new site, its queue and its worker, in one command."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from platform_core.config.site_skeleton import write_site
from platform_core.errors import BadSiteName


class Command(BaseCommand):
    help = (
        "Create sites/NAME/ and celery_tasks/NAME/ (with its probe task): the site's "
        "settings, Celery app and queue; `runNAMEworker` starts its worker."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, **options):
        name = options["name"]
        try:
            written = write_site(Path(settings.BASE_DIR), name)
        except BadSiteName as exc:
            raise CommandError(str(exc)) from None
        for path in written:
            self.stdout.write(f"created {path.relative_to(settings.BASE_DIR)}")
        command = "run" + name.replace("_", "") + "worker"
        self.stdout.write(
            f"Site {name!r} is ready: `manage.py {command}` starts its worker. Put its "
            f"tasks in celery_tasks/{name}/. Deployed hosts: add {name!r} to "
            "platform_workers_queues if you set that list yourself."
        )
