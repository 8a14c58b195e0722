"""Fault drills on a running platform: send recorded tasks, then report losses and duplicates.

manage drill send --token T --queue cert --count 6 --seconds 4
manage drill stream --token T --out F --stop-file S
                                   (one process sending a task every --interval s, as a
                                    web process would, until S exists: a line per send in F,
                                    "called returned 0|1" — 0 acknowledged — and each
                                    refusal's one line on stderr)
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
import time
from pathlib import Path

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
        stream = sub.add_parser("stream")
        stream.add_argument("--token", required=True)
        stream.add_argument("--out", required=True, type=Path)
        stream.add_argument("--stop-file", required=True, type=Path)
        stream.add_argument("--interval", type=float, default=0.2)
        stream.add_argument("--longest", type=float, default=600, help="stop after this anyway")
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
            app, name = self.drill_app(options["queue"])
            for _ in range(options["count"]):
                result = app.send_task(name, args=[options["token"], options["seconds"]])
                client.sadd(key, result.id)
            client.expire(key, 7 * 24 * 3600)
            self.stdout.write(f"sent {options['count']} to {options['queue']}")
            return
        if options["action"] == "stream":
            sent = self.stream(options)
            # Recorded once the stream stopped: a write during the outage the stream is
            # there to cross would fail, and an acknowledged task must count as sent.
            if sent:
                client.sadd(key, *sent)
            client.expire(key, 7 * 24 * 3600)
            self.stdout.write(f"streamed {len(sent)} acknowledged sends")
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

    def drill_app(self, queue: str):
        app = platform_apps()[queue]
        if app.conf.task_always_eager:
            raise CommandError("USE_CELERY is off: a drill would run here, not on a worker")
        return app, f"celery_tasks.{queue}.drills.record"

    def stream(self, options) -> list[str]:
        """Send until the stop file appears, at a fixed rate (no burst after a blocked send);
        returns the acknowledged ids."""
        app, name = self.drill_app("cert")
        sent, out = [], options["out"].open("w", encoding="utf-8")
        ends_at = time.monotonic() + options["longest"]
        next_at = time.monotonic()
        while not options["stop_file"].exists() and time.monotonic() < ends_at:
            called = time.time()
            try:
                sent.append(app.send_task(name, args=[options["token"], 0]).id)
                ok = 0
            except Exception as exc:  # a refused send is the drill's data, not its end
                self.stderr.write(f"{called:.3f} refused: {exc.__class__.__name__}: {exc}")
                ok = 1
            out.write(f"{called:.6f} {time.time():.6f} {ok}\n")
            out.flush()
            next_at = max(next_at + options["interval"], time.monotonic())
            time.sleep(max(0.0, next_at - time.monotonic()))
        out.close()
        return sent
