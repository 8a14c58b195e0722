"""The platform's queues and the broker policy each one runs under.

One queue per site plus ``long_running``. All share one Redis database (so Flower,
``inspect`` and cross-site ``send_task`` see everything).

Deliveries are recorded per worker under a lease (platform_core.broker.leases) and delays
wait in Redis (platform_core.broker.delays): a task on a live worker is never handed to
another, whatever its length or delay. The hard time limit only stops runaway tasks.
"""

import importlib.util
import pkgutil
from dataclasses import dataclass

from platform_core.config import timeouts

LONG_RUNNING = "long_running"
# Packages under sites/ that are not sites: the shared settings, the long-running app.
_NOT_SITES = {"base", LONG_RUNNING}


def _site_folders() -> tuple[str, ...]:
    """Every site is a folder sites/<name>/ (`manage.py startsite NAME` makes one);
    removing a site is deleting its folders. Works from the Shiv archive too."""
    # Found, not imported: the sites import this layer, never the other way round.
    folders = importlib.util.find_spec("sites").submodule_search_locations
    return tuple(
        sorted(
            module.name
            for module in pkgutil.iter_modules(folders)
            if module.ispkg and module.name not in _NOT_SITES
        )
    )


SITES = _site_folders()
QUEUES = (*SITES, LONG_RUNNING)
# The site whose settings the long-running worker uses unless LONG_RUNNING_SITE says
# otherwise; in development its worker also runs beat.
DEFAULT_LONG_RUNNING_SITE = "cert"


def app_path(site: str) -> str:
    """Where a site's Celery app lives, as `celery -A` takes it."""
    return f"sites.{site}.celery_app:{site}_app"


def worker_command(queue: str) -> str:
    """The management command that starts ``queue``'s worker: run<site>worker."""
    if queue == LONG_RUNNING:
        return "run_long_running_worker"
    return f"run{queue.replace('_', '')}worker"


WORKER_COMMANDS = {queue: worker_command(queue) for queue in QUEUES}


# The upgrade path, and nothing else: versions before leases recorded deliveries in
# kombu's time-windowed unacked index, one for the site queues and one for
# long_running (kombu#337). Messages left there go back to their queues once the
# window those versions used by default has passed (it is never reached by a worker
# of this version, which records nothing there). Remove once no such version runs.
# fence: kombu-legacy-unacked-index (platform_core/config/fences.py)
LEGACY_INDEXES = {"site": ("unacked", 420), LONG_RUNNING: ("unacked_long_running", 7860)}
LEGACY_SWEEP_SECONDS = 10


# What a warm shutdown may take beyond the hard time limit: killing the runaway child,
# acknowledging, closing the connection.
STOP_GRACE_SECONDS = 30


@dataclass(frozen=True)
class QueuePolicy:
    queue: str
    hard_time_limit: int  # seconds; the worker kills a runaway task after this
    prefetch_multiplier: int

    @property
    def soft_time_limit(self) -> int:
        return max(1, int(self.hard_time_limit * 0.9))

    @property
    def stop_timeout(self) -> int:
        """How long a stop may wait for running tasks (systemd TimeoutStopSec): past the
        hard limit, so a warm shutdown never kills a task the limit would have let run."""
        return self.hard_time_limit + STOP_GRACE_SECONDS

    def transport_options(self) -> dict:
        index, window = LEGACY_INDEXES[LONG_RUNNING if self.queue == LONG_RUNNING else "site"]
        return {
            "visibility_timeout": window,
            "unacked_key": index,
            "unacked_index_key": f"{index}_index",
            "unacked_mutex_key": f"{index}_mutex",
            "unacked_restore_interval": LEGACY_SWEEP_SECONDS,
            "unacked_restore_throttle": 1,
            # A broker that vanishes without closing the TCP connection (failover, NAT)
            # must not hang a publish forever.
            "socket_connect_timeout": timeouts.CONNECT_SECONDS,
            "socket_timeout": timeouts.COMMAND_SECONDS,
            "socket_keepalive": True,
            # ...nor leave a worker waiting on a fetch that will never be answered.
            "health_check_interval": timeouts.SILENT_BROKER_SECONDS,
        }


@dataclass(frozen=True)
class Limits:
    """The operator-tunable numbers behind every policy (settings PLATFORM_*)."""

    site_time_limit: int = 300
    long_time_limit: int = 2 * 60 * 60
    # Messages a site worker holds per pool process (Celery's worker_prefetch_multiplier).
    site_prefetch_multiplier: int = 4


def policy_for(queue: str, limits: Limits) -> QueuePolicy:
    """The policy of ``queue`` under ``limits``."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}; known queues: {', '.join(QUEUES)}")
    if queue == LONG_RUNNING:
        # One task at a time per process: nothing waits behind a long task.
        return QueuePolicy(queue, hard_time_limit=limits.long_time_limit, prefetch_multiplier=1)
    return QueuePolicy(
        queue,
        hard_time_limit=limits.site_time_limit,
        prefetch_multiplier=limits.site_prefetch_multiplier,
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
