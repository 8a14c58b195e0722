"""A broker host that stops answering is given up on by the whole process at once.

A primary whose host is powered off (or cut off) answers nothing and resets nothing, so
every connection a process holds to it would wait out its own COMMAND_SECONDS, one after
another: a worker's event loop publishes its events, flushes its acks and renews its
rate limits on different connections of different pools (measured before this: a
worker's main thread stalled 3 s at a time for 12 s after its primary went silent).

Here the first timeout from a host marks it for the process. A connection opened to it
before the mark is dropped before its next command (it reconnects through the sentinels,
which name a new primary once the failover is done), and for MARK_SECONDS no new one is
made to it (it fails at once with one line; the caller's retry asks the sentinels
again). Only a timeout marks a host: a reset or a refusal means it answers (a restart),
and a connection to it is tried again at once.

Used for connections to a primary named by Sentinel (clients.Sentinel), where another
host can take over; a redis:// broker has nowhere else to go.

fence: redis-sentinel-managed-connection (platform_core/config/fences.py)
"""

from time import monotonic

import redis
from redis.sentinel import SentinelManagedConnection, SentinelManagedSSLConnection

from platform_core.config import timeouts

# How long a host that timed out is not connected to again: one command's patience.
MARK_SECONDS = timeouts.COMMAND_SECONDS

_marked: dict[tuple[str, int], float] = {}  # (host, port) -> when it last timed out


def mark(address: tuple[str, int]) -> None:
    _marked[address] = monotonic()


def marked_at(address: tuple[str, int]) -> float | None:
    return _marked.get(address)


class FollowsSilentHosts:
    """Mixed into redis-py's SentinelManagedConnection (and its TLS variant)."""

    _opened_at = 0.0

    def connect_to(self, address):
        address = (address[0], int(address[1]))
        at = marked_at(address)
        if at is not None and monotonic() - at < MARK_SECONDS:
            raise redis.ConnectionError(
                f"Redis at {address[0]}:{address[1]} stopped answering "
                f"{monotonic() - at:.1f} s ago: not tried again for {MARK_SECONDS} s "
                "(the sentinels name another primary once they fail over)"
            )
        # Before connecting: the handshake's own commands must not find it stale.
        self._opened_at = monotonic()
        try:
            super().connect_to(address)
        except redis.TimeoutError:  # no TCP handshake, or no reply to it
            mark(address)
            raise

    def read_response(self, *args, **kwargs):
        try:
            return super().read_response(*args, **kwargs)
        except redis.TimeoutError:
            if self.host:
                mark((self.host, int(self.port)))
            raise

    def send_packed_command(self, command, check_health=True):
        if self._sock is not None and self.host:
            at = marked_at((self.host, int(self.port)))
            if at is not None and at > self._opened_at:
                self.disconnect()  # the next line reconnects through the sentinels
        return super().send_packed_command(command, check_health)


class Connection(FollowsSilentHosts, SentinelManagedConnection):
    pass


class SSLConnection(FollowsSilentHosts, SentinelManagedSSLConnection):
    pass


def connection_class(ssl: bool) -> type:
    return SSLConnection if ssl else Connection
