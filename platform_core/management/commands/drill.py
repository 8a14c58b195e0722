"""Fault drills on a running platform: send recorded tasks, then report losses and duplicates.

manage drill send --token T --queue cert --count 6 --seconds 4
(restart, kill or redeploy something)
manage drill report --token T      → {"sent": 6, "executed": 6, "lost": 0, "duplicates": 0}
manage drill starts --token T      → {"<task id>": [{"host": "worker-1", "at": 1700000000.5}]}
                                     (every start of each task, earliest first: a task
                                     re-run after its host was lost has two)
manage drill leader                → which beat holds the leader lock (not a drill: always)

Drills are opt-in per host (PLATFORM_DRILLS, off with DJANGO_ENV=production): where they
are off, every action but ``leader`` stops with one line saying how to enable them.
"""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from platform_core.broker import clients, keys
from platform_core.config.drills import DRILLS_OFF
from platform_core.config.queues import QUEUES
from platform_core.tasks.drills import executions, starts
from platform_core.tasks.registry import platform_apps


class Command(BaseCommand):
    help = "Send recorded drill tasks, or report which of them ran (once, twice, never)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        send = sub.add_parser("send")
        send.add_argument("--token", required=True)
        send.add_argument(
            "--queue", choices=[q for q in QUEUES if q in ("cert", "long_running")], default="cert"
        )
        send.add_argument("--count", type=int, default=1)
        send.add_argument("--seconds", type=float, default=0, help="how long each task runs")
        for action in ("report", "runs", "starts"):
            sub.add_parser(action).add_argument("--token", required=True)
        sub.add_parser("leader", help="which beat holds the leader lock (host:pid)")

    def handle(self, *args, **options):
        client = clients.connect()
        if options["action"] == "leader":
            leader = client.get(keys.BEAT_LEADER)
            self.stdout.write(leader.decode() if leader else "none")
            return
        if not settings.PLATFORM_DRILLS:
            raise CommandError(f"drill {options['action']}: {DRILLS_OFF}")
        if options["action"] == "runs":  # how many executions, of any task, were recorded
            self.stdout.write(str(sum(executions(options["token"]).values())))
            return
        if options["action"] == "starts":
            self.stdout.write(json.dumps(starts(options["token"]), sort_keys=True))
            return
        key = keys.drill(options["token"], "sent")
        if options["action"] == "send":
            app = platform_apps()[options["queue"]]
            if app.conf.task_always_eager:
                raise CommandError("USE_CELERY is off: a drill would run here, not on a worker")
            name = f"celery_tasks.{options['queue']}.drills.record"
            for _ in range(options["count"]):
                result = app.send_task(name, args=[options["token"], options["seconds"]])
                client.sadd(key, result.id)
            client.expire(key, 7 * 24 * 3600)
            self.stdout.write(f"sent {options['count']} to {options['queue']}")
            return
        sent = {member.decode() for member in client.smembers(key)}
        ran = executions(options["token"])
        self.stdout.write(
            json.dumps(
                {
                    "sent": len(sent),
                    "executed": len(sent & set(ran)),
                    "lost": len(sent - set(ran)),
                    "duplicates": sum(count - 1 for count in ran.values()),
                    "runs": sum(ran.values()),
                }
            )
        )
