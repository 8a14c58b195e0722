"""Every setting the platform takes from the environment: its variable, type and default,
stated once, read once per process.

:func:`environment` builds one :class:`Environment` from ``os.environ`` the first time it
is asked; sites/base/settings.py turns it into Django's and Celery's settings, and the
modules that run before or outside Django settings (the CLI, runflower) read it directly.
No other module reads a setting from ``os.environ`` (tests/consistency checks that, and
that docs/configuration.md quotes these defaults). Secrets are not settings: they are
read when used, from ``NAME`` or ``NAME_FILE`` (config.env.read_secret), and never kept.

A value that does not parse fails at start-up naming the variable to fix.
"""

import dataclasses
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from platform_core.config.queues import DEFAULT_LONG_RUNNING_SITE, Limits

CHECKOUT = Path(__file__).resolve().parents[2]
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use 1/0, true/false, on/off")


def _int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None


def _list(name: str, raw: str) -> tuple[str, ...]:
    """Comma-separated, blanks dropped."""
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _str(name: str, raw: str) -> str:
    return raw


_PARSERS = {bool: _bool, int: _int, str: _str, tuple: _list}


def variable(name: str, default, kind=None):
    """A field read from the environment variable ``name``; unset or empty: ``default``.

    A default of None means "decided by DJANGO_ENV" (see the properties below).
    """
    kind = kind or type(default)
    return field(default=default, metadata={"variable": name, "kind": kind})


@dataclass(frozen=True)
class Environment:
    django_env: str = variable("DJANGO_ENV", "development")
    debug: bool | None = variable("DJANGO_DEBUG", None, bool)
    secret_key: str = variable("DJANGO_SECRET_KEY", "")
    allowed_hosts: tuple[str, ...] = variable("DJANGO_ALLOWED_HOSTS", ())
    log_level: str = variable("DJANGO_LOG_LEVEL", "INFO")
    var_dir: str = variable("PLATFORM_VAR_DIR", "")  # "": var/ in the checkout
    reports_dir: str = variable("REPORTS_DIR", "")  # "": reports/ in var_dir
    test_database: str = variable("DJANGO_TEST_DATABASE", "")  # "": test-db.sqlite3 in var_dir
    database_url: str = variable("DATABASE_URL", "")  # "": db.sqlite3 in var_dir
    green_door_partner_url: str = variable("GREEN_DOOR_PARTNER_URL", "http://127.0.0.1:8089")
    use_celery: bool | None = variable("USE_CELERY", None, bool)
    redis_url: str = variable("REDIS_URL", "redis://127.0.0.1:6379/0")
    broker_url: str = variable("CELERY_BROKER_URL", "")  # "": REDIS_URL
    # The Redis ACL user this process logs in as (broker.acl; its password from
    # REDIS_PASSWORD_FILE); "": the URLs' own (development: none).
    redis_username: str = variable("REDIS_USERNAME", "")
    # The metrics collector in Flower's process reads as this user (read-only, broker.acl;
    # password from PLATFORM_METRICS_REDIS_PASSWORD_FILE); "": as REDIS_USERNAME.
    metrics_redis_username: str = variable("PLATFORM_METRICS_REDIS_USERNAME", "")
    result_backend: str = variable("CELERY_RESULT_BACKEND", "")  # "": the broker URL
    # With a sentinel:// broker URL (kombu's form, ";"-separated): the name the sentinels
    # know the primary by (their `sentinel monitor <name> …`).
    broker_master_name: str = variable("PLATFORM_BROKER_MASTER_NAME", "platform")
    # Replicas that must hold an enqueue before it returns (Redis WAIT; Redis'
    # min-replicas-to-write is set to the same by Ansible); 0: no waiting (one Redis).
    broker_min_replicas: int = variable("PLATFORM_BROKER_MIN_REPLICAS", 0)
    broker_replica_timeout_ms: int = variable("PLATFORM_BROKER_REPLICA_TIMEOUT_MS", 500)
    # TLS to Redis and its sentinels: the CA the servers' certificates must come from
    # ("": plain TCP).
    redis_ca_file: str = variable("PLATFORM_REDIS_CA_FILE", "")
    long_running_site: str = variable("LONG_RUNNING_SITE", DEFAULT_LONG_RUNNING_SITE)
    site_task_time_limit: int = variable("PLATFORM_SITE_TASK_TIME_LIMIT", Limits.site_time_limit)
    long_task_time_limit: int = variable("PLATFORM_LONG_TASK_TIME_LIMIT", Limits.long_time_limit)
    site_prefetch_multiplier: int = variable(
        "PLATFORM_SITE_PREFETCH_MULTIPLIER", Limits.site_prefetch_multiplier
    )
    # A sanity limit (delays wait in Redis, any length works): beyond it a delay is far
    # more likely a unit mistake (ms for s) than a plan.
    max_delay_seconds: int = variable("PLATFORM_MAX_DELAY_SECONDS", 30 * 24 * 60 * 60)
    # A dead worker's messages are back on their queues within lease + sweep seconds.
    lease_seconds: int = variable("PLATFORM_LEASE_SECONDS", 15)
    lease_sweep_seconds: int = variable("PLATFORM_LEASE_SWEEP_SECONDS", 5)
    max_attempts: int = variable("PLATFORM_MAX_ATTEMPTS", 3)
    drills: bool | None = variable("PLATFORM_DRILLS", None, bool)
    max_message_bytes: int = variable("PLATFORM_MAX_MESSAGE_BYTES", 10 * 1024 * 1024)
    beat_lock_ttl: int = variable("PLATFORM_BEAT_LOCK_TTL", 30)
    send_sent_event: bool = variable("PLATFORM_SEND_SENT_EVENT", False)
    event_flush_ms: int = variable("PLATFORM_EVENT_FLUSH_MS", 50)
    # Celery's two INFO lines per task (received, succeeded); failures are logged anyway.
    task_log_lines: bool | None = variable("PLATFORM_TASK_LOG_LINES", None, bool)
    task_events_off: tuple[str, ...] = variable("PLATFORM_TASK_EVENTS_OFF", ())
    flower_address: str = variable("FLOWER_ADDRESS", "127.0.0.1")
    flower_port: int = variable("FLOWER_PORT", 5555)
    flower_max_tasks: int = variable("FLOWER_MAX_TASKS", 10000)
    metrics_address: str = variable("PLATFORM_METRICS_ADDRESS", "127.0.0.1")
    metrics_port: int = variable("PLATFORM_METRICS_PORT", 5556)  # beside Flower's

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> "Environment":
        values = {}
        for spec in dataclasses.fields(cls):
            name, kind = spec.metadata["variable"], spec.metadata["kind"]
            raw = environ.get(name, "")
            if raw.strip():
                values[spec.name] = _PARSERS[kind](name, raw)
        found = cls(**values)
        if found.django_env not in ("development", "production"):
            raise ImproperlyConfigured(
                f"DJANGO_ENV={found.django_env!r}; set DJANGO_ENV to 'development' or 'production'"
            )
        return found

    # Defaults decided by DJANGO_ENV: a deployed host is safe, a checkout is convenient.
    @property
    def deployed(self) -> bool:
        return self.django_env == "production"

    @property
    def debug_on(self) -> bool:
        return (not self.deployed) if self.debug is None else self.debug

    @property
    def celery_on(self) -> bool:
        return self.deployed if self.use_celery is None else self.use_celery

    @property
    def drills_on(self) -> bool:
        return (not self.deployed) if self.drills is None else self.drills

    @property
    def task_log_lines_on(self) -> bool:
        return (not self.deployed) if self.task_log_lines is None else self.task_log_lines

    @property
    def var_path(self) -> Path:
        return Path(self.var_dir) if self.var_dir else CHECKOUT / "var"

    @property
    def broker(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def results(self) -> str:
        return self.result_backend or self.broker


@functools.cache
def environment() -> Environment:
    """This process's settings, read from its environment once."""
    return Environment.read(os.environ)


DEFAULTS = Environment()  # what a process with none of the variables set runs with
VARIABLES = {spec.metadata["variable"]: spec for spec in dataclasses.fields(Environment)}
