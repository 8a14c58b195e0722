"""kombu's Redis transport, hardened and with a cheaper publish.

Stock kombu parses each popped item inside the worker's event loop; an item that is
not a JSON envelope (anyone can LPUSH into a queue) raises there and the worker dies
with "Unrecoverable error". Here such an item is logged, counted and dropped.

Stock kombu also builds a new redis-py client object for every publish (~60 µs of
pure Python: the client copies its whole response-callback table); here a channel
keeps one per connection pool.
"""

import logging
from contextlib import contextmanager

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from platform_core.rejections import count_rejection

logger = logging.getLogger("platform_core.rejected")


class Channel(kombu_redis.Channel):
    _sync_client = None

    @contextmanager
    def conn_or_acquire(self, client=None):
        if client:
            yield client
            return
        pool = self.pool  # a new pool after a reconnect or fork gets a new client
        if self._sync_client is None or self._sync_client.connection_pool is not pool:
            self._sync_client = self._create_client()
        yield self._sync_client

    def _brpop_read(self, **options):
        # kombu 5.7's _brpop_read, with the envelope parsed under a guard.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise kombu_redis.Empty()
            dest, item = dest__item
            dest = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            try:
                envelope = loads(bytes_to_str(item))
                if not isinstance(envelope, dict):
                    raise ValueError(f"a JSON {type(envelope).__name__}, not an object")
            except (ValueError, UnicodeDecodeError) as exc:
                logger.error(
                    "Rejected message (not-an-envelope): queue=%s bytes=%d: %s; discarded",
                    dest,
                    len(item),
                    exc,
                )
                count_rejection(dest, "not-an-envelope")
                return True
            self.connection._deliver(envelope, dest)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()


class Transport(kombu_redis.Transport):
    Channel = Channel


def install() -> None:
    """Make redis:// URLs use this transport in this process (kombu's alias registry)."""
    TRANSPORT_ALIASES["redis"] = "platform_core.transport:Transport"
