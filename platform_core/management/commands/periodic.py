"""Create, change, list and delete periodic jobs at runtime (django-celery-beat)."""

import importlib
import json

from celery import Task
from django.core.management.base import BaseCommand, CommandError
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from platform_core.config.queues import queue_for_task_name


def _known_task(name: str) -> str:
    if queue_for_task_name(name) is None:
        raise CommandError(
            f"{name!r} is not a platform task name (celery_tasks.<queue>.<module>.<function>)"
        )
    module_name, _, attribute = name.rpartition(".")
    try:
        task = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        raise CommandError(f"no task {name!r}: {module_name} has no task {attribute!r}") from None
    if not isinstance(task, Task):
        raise CommandError(f"{name!r} is not a Celery task")
    return name


def _json_arg(raw: str, what: str, kind: type):
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--{what} is not JSON: {exc}") from None
    if not isinstance(value, kind):
        raise CommandError(f"--{what} must be a JSON {kind.__name__}")
    return raw


def _when(job: PeriodicTask) -> str:
    if job.interval:
        return f"every {job.interval.every} {job.interval.period}"
    if job.crontab:
        c = job.crontab
        return f"cron '{c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}' UTC"
    return "(clocked/solar)"


class Command(BaseCommand):
    help = "Manage periodic jobs in the database; a running beat picks changes up by itself."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="show every periodic job")
        setter = sub.add_parser("set", help="create or change a periodic job")
        setter.add_argument("name")
        setter.add_argument(
            "--task", required=True, help="e.g. celery_tasks.pqs.submissions.purge_stale_drafts"
        )
        when = setter.add_mutually_exclusive_group(required=True)
        when.add_argument("--every", type=int, help="interval in seconds")
        when.add_argument("--cron", help='crontab in UTC, e.g. "0 4 * * *"')
        setter.add_argument(
            "--args", dest="task_args", default="[]", help="JSON list of positional arguments"
        )
        setter.add_argument(
            "--kwargs", dest="task_kwargs", default="{}", help="JSON object of keyword arguments"
        )
        setter.add_argument("--disabled", action="store_true")
        for action in ("delete", "enable", "disable"):
            sub.add_parser(action).add_argument("name")

    def handle(self, *args, **options):
        action = options["action"]
        if action == "list":
            for job in PeriodicTask.objects.order_by("name"):
                state = "on " if job.enabled else "off"
                self.stdout.write(
                    f"{state} {job.name}: {job.task} {_when(job)} "
                    f"last run {job.last_run_at or 'never'}"
                )
            return
        if action == "set":
            self._set(options)
            return
        job = PeriodicTask.objects.filter(name=options["name"]).first()
        if job is None:
            raise CommandError(f"no periodic job named {options['name']!r}")
        if action == "delete":
            job.delete()
        else:
            job.enabled = action == "enable"
            job.save()  # save(), not update(): beat is told through PeriodicTasks
        self.stdout.write(f"{action}d {job.name}")

    def _set(self, options):
        defaults = {
            "task": _known_task(options["task"]),
            "args": _json_arg(options["task_args"], "args", list),
            "kwargs": _json_arg(options["task_kwargs"], "kwargs", dict),
            "enabled": not options["disabled"],
            "interval": None,
            "crontab": None,
        }
        if options["every"] is not None:
            if options["every"] < 1:
                raise CommandError("--every must be at least 1 second")
            defaults["interval"], _ = IntervalSchedule.objects.get_or_create(
                every=options["every"], period=IntervalSchedule.SECONDS
            )
        else:
            fields = options["cron"].split()
            if len(fields) != 5:
                raise CommandError('--cron takes five fields: "minute hour day month weekday"')
            minute, hour, day, month, weekday = fields
            defaults["crontab"], _ = CrontabSchedule.objects.get_or_create(
                minute=minute,
                hour=hour,
                day_of_month=day,
                month_of_year=month,
                day_of_week=weekday,
                timezone="UTC",
            )
        job, created = PeriodicTask.objects.update_or_create(
            name=options["name"], defaults=defaults
        )
        self.stdout.write(
            f"{'created' if created else 'updated'} {job.name}: {job.task} {_when(job)}"
        )
