"""Rate limits across every worker and host, changed at runtime (broker.rate_limits)."""

from django.core.management.base import BaseCommand, CommandError

from platform_core.broker import clients, keys, rate_limits
from platform_core.config.queues import QUEUES, queue_for_task_name
from platform_core.config.rates import Rate
from platform_core.errors import BROKER_ERRORS, BadRate


def _target(name: str) -> tuple[str, str]:
    """(queue, limit name) of a task name, or of a queue (its limit for all its tasks)."""
    if name in QUEUES:
        return name, rate_limits.ALL_TASKS
    queue = queue_for_task_name(name)
    if queue is None:
        raise CommandError(
            f"{name!r} is neither a queue ({', '.join(QUEUES)}) nor a platform task name "
            "(celery_tasks.<queue>.<module>.<function>)"
        )
    return queue, name


class Command(BaseCommand):
    help = (
        "Rate limits that hold across every worker and host: set NAME RATE (NAME a task "
        "or a whole queue, RATE N/s, N/m or N/h), clear NAME (back to the task's "
        "global_rate_limit, if any), list. Workers apply a change within ~3 s."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        setting = sub.add_parser("set")
        setting.add_argument("name")
        setting.add_argument("rate")
        sub.add_parser("clear").add_argument("name")
        sub.add_parser("list")

    def handle(self, *args, **options):
        client = clients.shared()
        try:
            if options["action"] == "list":
                return self._list(client)
            queue, name = _target(options["name"])
            room = keys.Room(queue)
            if options["action"] == "clear":
                client.hdel(room.rates, name)
                self.stdout.write(f"{options['name']}: runtime limit cleared")
                return None
            try:
                rate = Rate.parse(options["rate"], options["name"])
            except BadRate as exc:
                raise CommandError(str(exc)) from None
            client.hset(room.rates, name, str(rate))
            self.stdout.write(f"{options['name']}: {rate} across every worker")
            return None
        except BROKER_ERRORS as exc:
            raise CommandError(f"the broker did not answer ({exc}); nothing changed") from exc

    def _list(self, client):
        from platform_core.tasks.registry import platform_apps

        for app in platform_apps().values():
            app.finalize(auto=True)  # binds the tasks: their global_rate_limit registers
        for queue in QUEUES:
            runtime = {
                k.decode(): v.decode() for k, v in client.hgetall(keys.Room(queue).rates).items()
            }
            defaults = {n: str(r) for n, r in rate_limits.DEFAULTS.get(queue, {}).items()}
            for name in sorted(set(runtime) | set(defaults)):
                shown = queue if name == rate_limits.ALL_TASKS else name
                source = "runtime" if name in runtime else "code"
                self.stdout.write(f"{shown}  {runtime.get(name, defaults.get(name))}  ({source})")
