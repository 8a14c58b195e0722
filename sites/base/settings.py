"""Settings shared by every site. A site's module star-imports this and sets SITE_NAME.

Development defaults are embedded (SQLite, a local redis-server, tasks run
synchronously); a deployed host sets DJANGO_ENV=production and the secrets below.
Every value read from the environment comes from platform_core.config.environment
(variables, types and defaults stated there, read once).
"""

import ssl
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from platform_core.config import timeouts
from platform_core.config.env import with_credentials
from platform_core.config.environment import CHECKOUT, environment
from platform_core.tasks.task_lines import per_task_loggers

ENV = environment()
BASE_DIR = CHECKOUT
VAR_DIR = ENV.var_path

SITE_NAME = None  # each site's settings module sets this

DJANGO_ENV = ENV.django_env
DEPLOYED = ENV.deployed
DEBUG = ENV.debug_on

if DEPLOYED and not ENV.secret_key:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. Put it in the host's environment file (see ansible/)."
    )
SECRET_KEY = ENV.secret_key or "development-only-not-a-secret"

ALLOWED_HOSTS = list(ENV.allowed_hosts) or ([] if DEPLOYED else ["localhost", "127.0.0.1"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "platform_core",
    "records",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# One database for all sites: records and django-celery-beat's schedule live here.
# The tests' database file (workers are other processes: not :memory:).
TEST_DATABASE = ENV.test_database or str(VAR_DIR / "test-db.sqlite3")
DATABASE_URL = ENV.database_url or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several worker processes write at once: wait for the lock, take it up front.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["TEST"] = {
        "NAME": TEST_DATABASE,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True  # beat schedules are stored in UTC (a naive time shifts with DST)
STATIC_URL = "static/"

REPORTS_DIR = Path(ENV.reports_dir) if ENV.reports_dir else VAR_DIR / "reports"
GREEN_DOOR_PARTNER_URL = ENV.green_door_partner_url

# Which site's settings the long-running worker runs under.
LONG_RUNNING_SITE = ENV.long_running_site

LOG_LEVEL = ENV.log_level
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "[%(asctime)s: %(levelname)s/%(processName)s] %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    # Celery's two INFO lines per task, off where PLATFORM_TASK_LOG_LINES is
    # (platform_core.tasks.task_lines).
    "loggers": per_task_loggers(ENV.task_log_lines_on),
}

# --- Celery -----------------------------------------------------------------------
# Off: .delay()/apply_async()/send_task() run the task in the calling process, no
# broker needed. On: everything goes through Redis. Development default: off.
USE_CELERY = ENV.celery_on

# Each process logs in as its own Redis ACL user (broker.acl): REDIS_USERNAME, with the
# password read from REDIS_PASSWORD_FILE into these URLs here (never argv, env or logs).
REDIS_URL = with_credentials(ENV.redis_url, ENV.redis_username, "REDIS_PASSWORD")
# A broker with replicas (docs/operations.md, "Growing the broker"): the URL lists the
# sentinels (sentinel://:pw@host:26379;sentinel://…), which name the primary known as
# PLATFORM_BROKER_MASTER_NAME; an enqueue returns once PLATFORM_BROKER_MIN_REPLICAS
# replicas hold it, or fails after PLATFORM_BROKER_REPLICA_TIMEOUT_MS (docs/reliability.md).
PLATFORM_BROKER_MASTER_NAME = ENV.broker_master_name
PLATFORM_BROKER_MIN_REPLICAS = ENV.broker_min_replicas
# TLS to Redis and its sentinels, the server verified against this CA ("": plain TCP).
# Celery and kombu take it from the two settings below; every other client from
# platform_core.broker.clients.
PLATFORM_REDIS_CA_FILE = ENV.redis_ca_file
PLATFORM_BROKER_REPLICA_TIMEOUT_MS = ENV.broker_replica_timeout_ms
# Hard time limits (s): runaway tasks are killed after this (a task on a live worker is
# never handed to another, however long it runs). A site task longer than this
# belongs on long_running.
PLATFORM_SITE_TASK_TIME_LIMIT = ENV.site_task_time_limit
PLATFORM_LONG_TASK_TIME_LIMIT = ENV.long_task_time_limit
# Messages a site worker holds per pool process; a busy worker fetches once half of them
# are done, carrying their acks (docs/performance.md). long_running always holds one.
PLATFORM_SITE_PREFETCH_MULTIPLIER = ENV.site_prefetch_multiplier
# Longest countdown/ETA accepted (a sanity limit: delays are held in Redis, any length
# works; platform_core.broker.delays). Beyond it, apply_async raises DelayTooLong.
PLATFORM_MAX_DELAY_SECONDS = ENV.max_delay_seconds
# Worker leases (platform_core.broker.leases): a worker that stops renewing its lease for this
# long is taken for dead, and its messages go back to their queues at the next sweep
# (every PLATFORM_LEASE_SWEEP_SECONDS): the recovery bound is the sum of the two.
PLATFORM_LEASE_SECONDS = ENV.lease_seconds
PLATFORM_LEASE_SWEEP_SECONDS = ENV.lease_sweep_seconds
# A message delivered this many times without completing (its worker died each time)
# is recorded as failed instead of being run again.
PLATFORM_MAX_ATTEMPTS = ENV.max_attempts
# Fault drills (celery_tasks/<queue>/drills.py: tasks that record every run, retry on
# purpose, or kill their own pool process) are loaded only where this is on; a worker
# without them refuses a drill with one line saying how to enable them
# (platform_core.config.drills). Development default: on; production: off.
PLATFORM_DRILLS = ENV.drills_on
# Celery's per-task INFO lines (platform_core.tasks.task_lines); retries are logged anyway.
PLATFORM_TASK_LOG_LINES = ENV.task_log_lines_on
# Larger messages are rejected before they are decoded.
PLATFORM_MAX_MESSAGE_BYTES = ENV.max_message_bytes
# How long the active beat's leader lock lives without a refresh (failover bound).
PLATFORM_BEAT_LOCK_TTL = ENV.beat_lock_ttl
# Milliseconds a worker gathers task events before publishing them as one message
# (Flower sees a task at most this much later; docs/performance.md).
PLATFORM_EVENT_FLUSH_MS = ENV.event_flush_ms
# Queues whose workers send no task events (Flower then shows none of their tasks),
# comma-separated, e.g. "api,long_running". Default: every queue's workers send them.
PLATFORM_TASK_EVENTS_OFF = list(ENV.task_events_off)

# Every CELERY_* setting is read by each site's app (namespace="CELERY").
# Per-queue values (queue, time limits, prefetch) are set by
# platform_core.tasks.celery_factory from platform_core.config.queues, not here.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-url
CELERY_BROKER_URL = with_credentials(ENV.broker, ENV.redis_username, "REDIS_PASSWORD")
# The metrics collector (in Flower's process) reads as the read-only metrics user.
PLATFORM_METRICS_BROKER_URL = (
    with_credentials(ENV.broker, ENV.metrics_redis_username, "PLATFORM_METRICS_REDIS_PASSWORD")
    if ENV.metrics_redis_username
    else CELERY_BROKER_URL
)
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#result-backend
CELERY_RESULT_BACKEND = with_credentials(ENV.results, ENV.redis_username, "REDIS_PASSWORD")
# TLS (PLATFORM_REDIS_CA_FILE): the broker's and the results' connections, a sentinel://
# primary's included, require a certificate from that CA. kombu and Celery pick the
# TLS connection class from these; the sentinels' own connections: broker.clients.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-use-ssl
CELERY_BROKER_USE_SSL = (
    {"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": PLATFORM_REDIS_CA_FILE}
    if PLATFORM_REDIS_CA_FILE
    else None
)
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#redis-backend-use-ssl
CELERY_REDIS_BACKEND_USE_SSL = CELERY_BROKER_USE_SSL
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#result-expires
CELERY_RESULT_EXPIRES = 24 * 60 * 60
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#result-extended
CELERY_RESULT_EXTENDED = True
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-always-eager
CELERY_TASK_ALWAYS_EAGER = not USE_CELERY
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-eager-propagates
CELERY_TASK_EAGER_PROPAGATES = True
# JSON only: a pickle message is refused, never executed.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#accept-content
CELERY_ACCEPT_CONTENT = ["json"]
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-serializer
CELERY_TASK_SERIALIZER = "json"
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#result-serializer
CELERY_RESULT_SERIALIZER = "json"
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#result-accept-content
CELERY_RESULT_ACCEPT_CONTENT = ["json"]
# Ack after the task ran, so a worker that dies mid-task loses nothing.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-acks-late
CELERY_TASK_ACKS_LATE = True
# A pool process killed mid-task (OOM, SIGKILL) re-queues its message at once.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-reject-on-worker-lost
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Events feed Flower.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-send-task-events
CELERY_WORKER_SEND_TASK_EVENTS = True
# Off by default: the "task-sent" event is a second Redis round trip inside every
# .delay() (~40 % of the enqueue cost). Flower then lists a task from "received" on;
# PLATFORM_SEND_SENT_EVENT=1 brings the "sent" state back (docs/performance.md).
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-send-sent-event
CELERY_TASK_SEND_SENT_EVENT = ENV.send_sent_event
# Off: a STARTED state costs two Redis round trips per task (read, then write the
# result key). Flower still shows "started" from the task-started event.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-track-started
CELERY_TASK_TRACK_STARTED = False
# Django's LOGGING stays in charge of the root logger.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-hijack-root-logger
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Bound the wait for a broker when publishing, so a web request fails fast.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-connection-timeout
CELERY_BROKER_CONNECTION_TIMEOUT = timeouts.CONNECT_SECONDS
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#task-publish-retry-policy
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
# Redis connections fail fast instead of hanging on a vanished peer (the one timeout
# policy: platform_core.config.timeouts).
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#redis-socket-connect-timeout
CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = timeouts.CONNECT_SECONDS
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#redis-socket-timeout
CELERY_REDIS_SOCKET_TIMEOUT = timeouts.COMMAND_SECONDS
# Workers keep retrying a lost broker connection at start-up and later.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#broker-connection-retry-on-startup
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Restart pool processes now and then: guards against leaks in task code that the
# memory limit below does not see (file descriptors, sockets). Every restart is a
# fork the worker's main process pays for (~10 % of its time at 1000 with no-op
# tasks; docs/performance.md).
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-max-tasks-per-child
CELERY_WORKER_MAX_TASKS_PER_CHILD = 10_000
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-max-memory-per-child
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 400_000  # KiB
# One-line rejection of malformed, unknown and non-JSON messages.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-consumer
CELERY_WORKER_CONSUMER = "platform_core.tasks.consumer:PlatformConsumer"
# Periodic jobs live in the database (django-celery-beat); the platform's scheduler
# adds a Redis leader lock so a second beat stays on standby instead of doubling.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#beat-scheduler
CELERY_BEAT_SCHEDULER = "platform_core.tasks.beat:SingleBeatScheduler"
# Write last_run_at to the database after every task sent, so a standby beat that
# takes over does not send a tick the failed leader already sent.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#beat-sync-every
CELERY_BEAT_SYNC_EVERY = 1
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#timezone
CELERY_TIMEZONE = "UTC"

# Fail at start-up, naming the variable, rather than deep inside a worker.
from platform_core.config.queues import validate_queues, validate_site  # noqa: E402

validate_site(LONG_RUNNING_SITE, "LONG_RUNNING_SITE")
validate_queues(PLATFORM_TASK_EVENTS_OFF, "PLATFORM_TASK_EVENTS_OFF")
