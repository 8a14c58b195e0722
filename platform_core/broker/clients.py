"""The one place the platform opens a Redis client outside kombu's own pools.

Every client gets the timeouts of platform_core.config.timeouts: connect within
CONNECT_SECONDS, each reply within COMMAND_SECONDS (PROBE_SECONDS for a probe), and no
retries inside redis-py (:func:`no_retries`).

A broker URL is either one Redis (``redis://``) or kombu's Sentinel form, every sentinel
listed: ``sentinel://:pw@host1:26379;sentinel://:pw@host2:26379/0``. A Sentinel client
asks the sentinels, in turn, for the primary known as PLATFORM_BROKER_MASTER_NAME on
every new connection (redis-py's SentinelManagedConnection), so it follows a failover;
the first sentinel being down or silent is not an error (each is given SENTINEL_SECONDS,
and one that did not answer is asked last from then on, in the whole process). The sentinels
take the same password as Redis. kombu's channels and Celery's result backend build their pools with
:class:`Sentinel` too (broker.transport, tasks.results).

TLS (PLATFORM_REDIS_CA_FILE set): every connection, to Redis and to the sentinels,
verifies the server against that CA (:func:`tls_options`); Celery's and kombu's own
connections get the same from settings (CELERY_BROKER_USE_SSL), their sentinels from
:func:`sentinel_kwargs_from`.
"""

import os
from dataclasses import dataclass
from time import monotonic
from urllib.parse import unquote, urlsplit

import redis
import redis.sentinel
from django.conf import settings
from redis.backoff import NoBackoff
from redis.retry import Retry

from platform_core.broker import silent_hosts
from platform_core.config import timeouts

SENTINEL_SCHEME = "sentinel"

_shared: dict[str, redis.Redis] = {}
_shared_pid = None
# Sentinels that did not answer, and when (the latest time): asked last by this process.
_silent_sentinels: dict[tuple[str, int], float] = {}


def _address(sentinel: redis.Redis) -> tuple[str, int]:
    kwargs = sentinel.connection_pool.connection_kwargs
    return kwargs.get("host"), int(kwargs.get("port"))


def _last_silent(sentinel: redis.Redis) -> tuple[float, float]:
    # A sentinel whose host's Redis went silent first (it shares the host: powered off
    # together, measured 1 s asking it during a failover), then its own silence.
    address = _address(sentinel)
    return silent_hosts.host_marked_at(address[0]), _silent_sentinels.get(address, 0.0)


def no_retries() -> Retry:
    """The platform's retry policy inside redis-py: none.

    redis-py 8's ``Redis()`` retries a command that timed out or lost its connection 10
    times (backoff up to 1 s): against a host gone silent every call then waits 11 times
    its timeout (33 s with COMMAND_SECONDS, measured in the power-off drill), and a script
    or LPUSH whose first try did land runs twice. The caller's own loop decides instead
    (kombu's ensure and reconnect, the lease and delay threads' next turn, a task's retry).
    A new object each time: redis-py copies and mutates them.
    """
    return Retry(NoBackoff(), 0)


def is_sentinel(url: str) -> bool:
    return url.startswith(f"{SENTINEL_SCHEME}://")


@dataclass(frozen=True)
class SentinelURL:
    """kombu's ``sentinel://…;sentinel://…`` URL: the sentinels, the password, the db."""

    addresses: tuple[tuple[str, int], ...]
    username: str | None
    password: str | None
    db: int

    DEFAULT_PORT = 26379

    @classmethod
    def parse(cls, url: str) -> "SentinelURL":
        parts = [urlsplit(chunk) for chunk in url.split(";") if chunk.strip()]
        first = parts[0]
        path = first.path.strip("/")
        return cls(
            addresses=tuple((part.hostname, part.port or cls.DEFAULT_PORT) for part in parts),
            username=unquote(first.username) if first.username else None,
            password=unquote(first.password) if first.password else None,
            db=int(path) if path else 0,
        )

    @property
    def credentials(self) -> dict:
        found = {"username": self.username, "password": self.password}
        return {key: value for key, value in found.items() if value}


class Sentinel(redis.sentinel.Sentinel):
    """redis-py's, with a "no primary" error that names every sentinel tried and what it
    said, and the master name (redis-py's names only the master); each sentinel asked
    within SENTINEL_SECONDS, once (no retries), those that did not answer lately last."""

    def __init__(self, sentinels, sentinel_kwargs=None, **connection_kwargs):
        # The primary's connections give up on a host gone silent together (silent_hosts);
        # kombu names its TLS class here when the broker URL asks for TLS.
        given = connection_kwargs.pop("connection_class", None)
        tls = connection_kwargs.pop("ssl", False) or (
            given is not None and issubclass(given, redis.SSLConnection)
        )
        connection_kwargs["connection_class"] = silent_hosts.connection_class(tls)
        addresses = [(host, int(port)) for host, port in sentinels]
        asked = {
            **(sentinel_kwargs or {}),
            "socket_timeout": timeouts.SENTINEL_SECONDS,
            "socket_connect_timeout": timeouts.SENTINEL_SECONDS,
            "retry": no_retries(),
        }
        super().__init__(addresses, sentinel_kwargs=asked, **connection_kwargs)

    def discover_master(self, service_name):
        tried = []
        # In the order listed, but one that did not answer lately, or on a host whose
        # Redis went silent, last (in the whole process): a silent sentinel costs
        # SENTINEL_SECONDS once, not every connection.
        for sentinel in sorted(self.sentinels, key=_last_silent):
            kwargs = sentinel.connection_pool.connection_kwargs
            where = f"{kwargs.get('host')}:{kwargs.get('port')}"
            try:
                masters = sentinel.sentinel_masters()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                _silent_sentinels[_address(sentinel)] = monotonic()
                tried.append(f"{where} did not answer ({exc})")
                continue
            state = masters.get(service_name)
            if state and self.check_master_state(state, service_name):
                return state["ip"], state["port"]
            tried.append(
                f"{where} knows no primary named {service_name!r}"
                if not state
                else f"{where} sees {service_name!r} down or without enough sentinels"
            )
        raise redis.sentinel.MasterNotFoundError(
            f"No sentinel names a primary for {service_name!r} (PLATFORM_BROKER_MASTER_NAME): "
            + "; ".join(tried)
        )


# What the sentinels take from the primary's connection parameters: its credentials (one
# password for Redis and its sentinels); their timeouts are their own (Sentinel).
SENTINEL_SHARED_PARAMS = ("username", "password")


def sentinel_kwargs_from(params: dict) -> dict:
    """The sentinels' connection settings, taken from the primary's ``params``."""
    shared_params = {
        key: value for key, value in params.items() if key in SENTINEL_SHARED_PARAMS and value
    }
    return {**shared_params, **tls_kwargs()}


def tls_options() -> dict:
    """redis-py's settings for verifying the server (PLATFORM_REDIS_CA_FILE): its
    certificate must come from that CA and name the address connected to (redis-py
    checks the host name by default). {} when TLS is off."""
    ca_file = settings.PLATFORM_REDIS_CA_FILE
    if not ca_file:
        return {}
    return {"ssl_ca_certs": ca_file, "ssl_cert_reqs": "required"}


def tls_kwargs() -> dict:
    """:func:`tls_options` for a ``redis.Redis(...)`` or a Sentinel (its sentinels and
    the primary it names): ``ssl=True`` picks their TLS connection class."""
    options = tls_options()
    return {"ssl": True, **options} if options else {}


def sentinel_for(url: SentinelURL, **connection) -> Sentinel:
    """A Sentinel on ``url``'s sentinels; ``connection``: socket options for both the
    sentinels and the primary. The sentinels take the primary's credentials."""
    return Sentinel(url.addresses, sentinel_kwargs={**connection, **url.credentials}, **connection)


def sentinels(url: str | None = None) -> Sentinel | None:
    """The sentinels of ``url`` (default: the broker) for asking about the broker itself
    (observe.broker_state); None for a ``redis://`` URL."""
    url = url or settings.CELERY_BROKER_URL
    if not is_sentinel(url):
        return None
    return sentinel_for(SentinelURL.parse(url), **tls_kwargs())


def connect(url: str | None = None, *, probe: bool = False) -> redis.Redis:
    """A new client on ``url`` (default: the broker). The caller closes it.

    ``probe``: the short timeouts, for "is it there?" and best-effort writes.
    """
    url = url or settings.CELERY_BROKER_URL
    seconds = timeouts.PROBE_SECONDS if probe else timeouts.COMMAND_SECONDS
    connection = {
        "socket_connect_timeout": min(seconds, timeouts.CONNECT_SECONDS),
        "socket_timeout": seconds,
        "retry": no_retries(),
    }
    if is_sentinel(url):
        parsed = SentinelURL.parse(url)
        return sentinel_for(parsed, **connection, **tls_kwargs()).master_for(
            settings.PLATFORM_BROKER_MASTER_NAME, db=parsed.db, **parsed.credentials
        )
    tls = tls_options()
    if tls:  # redis:// or rediss://: the URL's own scheme would not verify the server
        connection.update(tls, connection_class=redis.SSLConnection)
    return redis.Redis.from_url(url, **connection)


def shared(url: str | None = None) -> redis.Redis:
    """This process's client on ``url`` (default: the broker), opened once.

    For short commands from task code, the consumer and beat: a rejection or a lock must
    not show up as a connection coming and going. Never closed by its callers; a forked
    child opens its own (redis-py's pool also resets itself in a child).
    """
    global _shared_pid
    if _shared_pid != os.getpid():
        _shared.clear()
        _shared_pid = os.getpid()
    url = url or settings.CELERY_BROKER_URL
    if url not in _shared:
        _shared[url] = connect(url)
    return _shared[url]
