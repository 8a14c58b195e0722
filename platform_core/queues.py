"""The platform's queues and the broker policy each one runs under.

One queue per site plus ``long_running``. All share one Redis database (so Flower,
``inspect`` and cross-site ``send_task`` see everything).

Deliveries are recorded per worker under a lease (platform_core.leases), not in kombu's
unacked index. The per-queue index keys and windows below remain only so that messages
an earlier version left in those indexes go back to their queues once (the upgrade
path); the long-running queue kept its *own* index because kombu's clock is per index
and the shortest timeout sharing one wins (kombu#337, celery#5935).
"""

from dataclasses import dataclass

SITES = ("cert", "green_door", "pqs", "api")
LONG_RUNNING = "long_running"
QUEUES = (*SITES, LONG_RUNNING)
# The management command that starts each queue's worker.
WORKER_COMMANDS = {
    "cert": "runcertworker",
    "green_door": "rungreendoorworker",
    "pqs": "runpqsworker",
    "api": "runapiworker",
    LONG_RUNNING: "run_long_running_worker",
}

# How often a worker sweeps its unacked index for messages of dead workers.
RESTORE_SWEEP_SECONDS = 10


@dataclass(frozen=True)
class QueuePolicy:
    queue: str
    hard_time_limit: int  # seconds; the worker kills the task after this
    max_countdown: int  # seconds; longest countdown/ETA accepted for this queue
    prefetch_multiplier: int
    unacked_key_prefix: str  # which unacked index in Redis this queue's workers use
    # Seconds between the end of the longest legitimate stay in the unacked index
    # (countdown + run time) and the moment Redis hands the message to another worker.
    redelivery_margin: int = 60

    @property
    def soft_time_limit(self) -> int:
        return max(1, int(self.hard_time_limit * 0.9))

    @property
    def visibility_timeout(self) -> int:
        # A message is in the unacked index from delivery until ack: while it waits
        # for its ETA and while it runs. Redelivery must come only after both.
        return self.hard_time_limit + self.max_countdown + self.redelivery_margin

    def transport_options(self) -> dict:
        return {
            "visibility_timeout": self.visibility_timeout,
            "unacked_key": f"{self.unacked_key_prefix}",
            "unacked_index_key": f"{self.unacked_key_prefix}_index",
            "unacked_mutex_key": f"{self.unacked_key_prefix}_mutex",
            # Sweep every RESTORE_SWEEP_SECONDS (kombu's default is every 100 s).
            "unacked_restore_interval": RESTORE_SWEEP_SECONDS,
            "unacked_restore_throttle": 1,
            # A broker that vanishes without closing the TCP connection (failover, NAT)
            # must not hang a publish forever.
            "socket_connect_timeout": 2,
            "socket_timeout": 3,
            "socket_keepalive": True,
        }


@dataclass(frozen=True)
class Limits:
    """The operator-tunable numbers behind every policy (settings PLATFORM_*)."""

    site_time_limit: int = 300
    long_time_limit: int = 2 * 60 * 60
    site_max_countdown: int = 60
    long_max_countdown: int = 600
    redelivery_margin: int = 60


def policy_for(queue: str, limits: Limits) -> QueuePolicy:
    """The policy of ``queue`` under ``limits``."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; known queues: {', '.join(QUEUES)}")
    if queue == LONG_RUNNING:
        return QueuePolicy(
            queue=queue,
            hard_time_limit=limits.long_time_limit,
            max_countdown=limits.long_max_countdown,
            # One task at a time per process: nothing waits behind a long task.
            prefetch_multiplier=1,
            unacked_key_prefix="unacked_long_running",
            redelivery_margin=limits.redelivery_margin,
        )
    return QueuePolicy(
        queue=queue,
        hard_time_limit=limits.site_time_limit,
        max_countdown=limits.site_max_countdown,
        prefetch_multiplier=1,
        unacked_key_prefix="unacked",
        redelivery_margin=limits.redelivery_margin,
    )


def queue_for_task_name(name: str) -> str | None:
    """``celery_tasks.<queue>.…`` → ``<queue>``; the name alone decides the queue."""
    parts = name.split(".")
    if len(parts) >= 3 and parts[0] == "celery_tasks" and parts[1] in QUEUES:
        return parts[1]
    return None


def worker_settings_module(queue: str, long_running_site: str) -> str:
    """The settings a queue's worker runs under: its site's, or LONG_RUNNING_SITE's."""
    return f"sites.{long_running_site if queue == LONG_RUNNING else queue}.settings"


def validate_site(name: str, setting: str) -> str:
    if name not in SITES:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"{setting}={name!r} is not a site of this platform; "
            f"set {setting} to one of: {', '.join(SITES)}"
        )
    return name


def validate_queues(names: list[str], setting: str) -> list[str]:
    unknown = [name for name in names if name not in QUEUES]
    if unknown:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"{setting} names {', '.join(map(repr, unknown))}, not a queue of this platform; "
            f"use a comma-separated list of: {', '.join(QUEUES)}"
        )
    return names
