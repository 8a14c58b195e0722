"""``manage.py queues``: the metrics' figures as a table for a person on the box."""

import time

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from platform_core.broker import clients
from platform_core.config.env import redacted
from platform_core.errors import Rejection
from platform_core.observe.broker_state import BrokerState, read_broker_state
from platform_core.observe.queue_stats import Snapshot, read_snapshot

CLEAR_SCREEN = "\x1b[H\x1b[2J"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def render_broker(state: BrokerState) -> str:
    """One line: the primary, its replicas and, with Sentinel, quorum and failovers."""
    replicas = ", ".join(
        f"{replica.address} {replica.state} (lag {replica.lag_seconds} s)"
        for replica in state.replicas
    )
    line = f"broker: primary {state.primary}; replicas: {replicas or 'none'}"
    if state.sentinels is not None:
        view = state.sentinels
        line += (
            f"; sentinels answering {view.reachable}/{view.listed}, "
            f"quorum {'ok' if view.quorum_ok else 'LOST'}, failover epoch {view.failover_epoch}"
        )
    if state.clock_jumps:
        line += f"; clock jumps {state.clock_jumps}"
    return line + "\n"


def render(snapshot: Snapshot) -> str:
    header = ("queue", "waiting", "oldest", "in flight", "delayed", "next due", "workers")
    header += ("rate-limited", "rejected", "poison", "redelivered", "cancelled")
    rows = [header]
    for stats in snapshot.queues.values():
        oldest = duration(stats.oldest_age) if stats.depth else "-"
        if stats.depth and not stats.oldest_stamped:
            oldest += "*"
        rejected = sum(stats.rejected.values())
        rows.append(
            (
                stats.queue,
                str(stats.depth),
                oldest,
                str(stats.in_flight),
                str(stats.delayed),
                duration(stats.next_due_in),
                str(stats.consumers),
                str(stats.rate_limited),
                str(rejected),
                str(stats.rejected.get(Rejection.TOO_MANY_ATTEMPTS, 0)),
                str(stats.redelivered),
                str(stats.cancelled),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    if any(s.depth and not s.oldest_stamped for s in snapshot.queues.values()):
        lines.append("* a plain client's message (no send stamp): aged since first seen")
    lines.append("")
    for worker in sorted(snapshot.workers, key=lambda w: w.worker):
        state = "alive" if worker.alive else "EXPIRED"
        holding = (
            ", ".join(f"{q} {n}" for q, n in sorted(worker.in_flight.items()) if n) or "nothing"
        )
        lines.append(
            f"worker {worker.worker}: lease {state}, renewed {duration(worker.renewed_age)} ago, "
            f"holding {holding}"
        )
    if not snapshot.workers:
        lines.append("no worker holds a lease")
    beat = snapshot.beat
    if beat.leader:
        lines.append(f"beat leader {beat.leader}, last tick {duration(beat.tick_age)} ago")
    else:
        lines.append("NO BEAT LEADER: periodic jobs are not being sent")
    return "\n".join(lines)


class Command(BaseCommand):
    help = (
        "Per queue: messages waiting, age of the oldest, in flight, delayed, workers, "
        "rejections; the workers' leases and the beat leader. --watch refreshes."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--watch",
            nargs="?",
            type=float,
            const=2.0,
            metavar="SECONDS",
            help="refresh every SECONDS (2 if not given) until Ctrl-C",
        )

    def handle(self, *args, **options):
        client = clients.connect()
        sentinel = clients.sentinels()
        interval = options["watch"]
        try:
            while True:
                table = render(self._snapshot(client)).rstrip("\n") + "\n"
                table += self._broker(client, sentinel)
                if interval is None:
                    self.stdout.write(table)
                    return
                self.stdout.write(CLEAR_SCREEN + time.strftime("%H:%M:%S ") + table)
                time.sleep(interval)
        except KeyboardInterrupt:
            return

    def _broker(self, client, sentinel) -> str:
        try:
            state = read_broker_state(client, sentinel, settings.PLATFORM_BROKER_MASTER_NAME)
        except redis.RedisError as exc:
            return f"broker: replication state not read ({exc})\n"
        return render_broker(state)

    def _snapshot(self, client) -> Snapshot:
        try:
            return read_snapshot(client)
        except redis.RedisError as exc:
            raise CommandError(
                f"The broker at {redacted(settings.CELERY_BROKER_URL)} did not answer "
                f"({exc}). Check that Redis is up and CELERY_BROKER_URL points at it."
            ) from None
