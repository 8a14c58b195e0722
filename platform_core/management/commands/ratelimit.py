"""Global rate limits changed at runtime (broker.rate_limits; the admin edits the same)."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from platform_core.broker import rate_limits
from platform_core.config.queues import QUEUES
from platform_core.errors import BROKER_ERRORS
from platform_core.models import RateLimit


class Command(BaseCommand):
    help = (
        "Rate limits that hold across every worker and host: set NAME RATE (NAME a task, "
        "or a queue for all its tasks without a limit of their own; RATE N/s, N/m or "
        "N/h), clear NAME (back to the task's global_rate_limit, if any), list. Workers "
        "apply a change within ~3 s."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        setting = sub.add_parser("set")
        setting.add_argument("name")
        setting.add_argument("rate")
        sub.add_parser("clear").add_argument("name")
        sub.add_parser("list")

    def handle(self, *args, **options):
        try:
            if options["action"] == "list":
                return self._list()
            name = options["name"]
            if options["action"] == "clear":
                deleted = [limit.delete() for limit in RateLimit.objects.filter(name=name)]
                self.stdout.write(f"{name}: {'cleared' if deleted else 'had no runtime limit'}")
                return None
            limit = RateLimit.objects.filter(name=name).first() or RateLimit(name=name)
            limit.rate = options["rate"]
            limit.save()
            self.stdout.write(f"{name}: {limit.rate} across every worker")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except BROKER_ERRORS as exc:
            raise CommandError(f"the broker did not answer ({exc}); nothing changed") from exc
        return None

    def _list(self):
        from platform_core.tasks.registry import platform_apps

        for app in platform_apps().values():
            app.finalize(auto=True)  # binds the tasks: their global_rate_limit registers
        rows = [(limit.name, limit.rate, "runtime") for limit in RateLimit.objects.all()]
        for queue in QUEUES:
            for name, rate in rate_limits.DEFAULTS.get(queue, {}).items():
                shown = queue if name == rate_limits.ALL_TASKS else name
                rows.append((shown, str(rate), "code: the task's global_rate_limit"))
        for name, rate, source in sorted(rows):
            self.stdout.write(f"{name}  {rate}  ({source})")
