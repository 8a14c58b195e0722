"""Connections to a primary named by Sentinel that follow it when its host goes silent.

Two things redis-py 8.1's SentinelManagedConnection does not do:

- Reconnect through the sentinels. A connection dropped after an error and then used
  again (kombu keeps one per channel for its fetches) is reconnected by
  ``send_packed_command`` with ``connect_check_health``, to the host it had: after a
  failover it keeps going back to the old primary. Here it asks the sentinels
  (``connect``), as a connection taken from the pool does.
- Give up on a silent host together. A primary whose host is powered off answers nothing
  and resets nothing, so every connection a process holds to it waits out its own
  COMMAND_SECONDS, one after another on a worker's event loop (events, acks, results,
  rate limits: measured 3 s stalls for 12 s). Here the first timeout from a host marks
  it for the process, and every connection opened to it before the mark fails its next
  command at once (ConnectionError), so its user reconnects through the sentinels. Only
  a timeout marks a host: a reset or a refusal means it answers (a restart).

Used by clients.Sentinel for every connection to the primary (kombu's channels, Celery's
result backend, the platform's own clients).

fence: redis-sentinel-managed-connection (platform_core/config/fences.py)
"""

import os
import threading
from time import monotonic

import redis
from redis.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection

_marked: dict[tuple[str, int], float] = {}  # (host, port) -> when it last timed out
_probing: set[tuple[str, int]] = set()  # hosts a thread of this process is trying
# A probe thread does not survive a fork: the child must not wait for its verdict.
os.register_at_fork(after_in_child=_probing.clear)


def _key(address) -> tuple[str, int]:
    return (address[0], int(address[1]))


def mark(address: tuple[str, int]) -> None:
    _marked[_key(address)] = monotonic()


def marked_at(address: tuple[str, int]) -> float | None:
    return _marked.get(_key(address))


def host_marked_at(host: str) -> float:
    """When any service on ``host`` last went silent (0.0: never, or it answered since):
    its sentinel, on the same powered-off host, is asked last (clients.Sentinel)."""
    # A copy: a probe thread may lift a mark meanwhile (list() of a dict is atomic).
    return max((at for (marked, _), at in list(_marked.items()) if marked == host), default=0.0)


def _probe_in_background(pool_proxy, address) -> None:
    """One thread at a time per host: a real connection and a PING; any answer lifts the
    mark, silence renews it."""
    address = _key(address)
    pool = pool_proxy.connection_pool_ref()  # redis-py's proxy holds its pool weakly
    if pool is None or address in _probing:
        return
    _probing.add(address)

    def probe():
        try:
            if pool.connection_class(**pool.connection_kwargs).answers(address):
                _marked.pop(address, None)
        finally:
            _probing.discard(address)

    threading.Thread(target=probe, name=f"probe {address[0]}:{address[1]}", daemon=True).start()


class FollowsSentinel:
    """Mixed into redis-py's SentinelManagedConnection (and its TLS variant)."""

    _opened_at = 0.0

    def connect_to(self, address):
        at = marked_at(address)
        if at is not None:
            _probe_in_background(self.connection_pool, address)
            raise redis.ConnectionError(
                f"Redis at {address[0]}:{address[1]} has not answered since "
                f"{monotonic() - at:.1f} s ago and the sentinels still name it the primary: "
                "not waited on again until it answers a probe or they name another"
            )
        self._connect_to(address)

    def _connect_to(self, address):
        # Stamped before connecting: the handshake's own commands must not find it stale.
        self._opened_at = monotonic()
        try:
            super().connect_to(address)
        except redis.TimeoutError:  # no TCP handshake, or no reply to it
            mark(address)
            raise

    def went_silent(self) -> float | None:
        """When this connection's host stopped answering, if it did after it was opened
        (its next command fails at once: send_packed_command)."""
        if self._sock is None or not self.host:
            return None
        at = marked_at((self.host, self.port))
        return at if at is not None and at > self._opened_at else None

    def fail_as_silent(self):
        at = self.went_silent() or monotonic()
        host, port = self.host, self.port
        self.disconnect()
        raise redis.ConnectionError(
            f"Redis at {host}:{port} stopped answering {monotonic() - at:.1f} s ago: "
            "reconnecting through the sentinels"
        )

    def answers(self, address) -> bool:
        """A probe: False only if the host stays silent (and it stays marked)."""
        try:
            self._connect_to(address)
            self.send_command("PING")
            self.read_response()
        except redis.TimeoutError:
            return False
        except (redis.RedisError, OSError):  # refused, reset, or an error reply: it answers
            return True
        finally:
            self.disconnect()
        return True

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        except redis.TimeoutError:
            if self.host:
                mark((self.host, self.port))
            raise

    def send_packed_command(self, command, check_health=True):
        if self.went_silent() is not None:
            # Failed now rather than after COMMAND_SECONDS; not reconnected here: an
            # event loop watches this socket (kombu), and the caller's error path (its
            # reconnect, kombu's ensure) builds what uses the new one.
            self.fail_as_silent()
        if self._sock is None:
            self.connect()  # through the sentinels (redis-py would go back to self.host)
        return super().send_packed_command(command, check_health)


class Connection(FollowsSentinel, SentinelManagedConnection):
    pass


class SSLConnection(FollowsSentinel, SentinelManagedSSLConnection):
    pass


def connection_class(tls: bool) -> type:
    return SSLConnection if tls else Connection
