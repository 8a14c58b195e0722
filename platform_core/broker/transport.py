"""kombu's Redis transport, hardened, with fewer round trips per message: the entry point.

``redis://`` URLs use it in every platform process (:func:`install`). Its rooms:

- channel: fetching (one script per fetch, BLMOVE while idle), delivering (each item
  parsed under a guard), publishing (far delays parked in Redis);
- qos: acknowledgements (what this worker holds, removed in batches per loop turn);
- envelope: kombu's envelope read under a guard; message_checks: what it must hold;
- leases / delays: the threads that hand a dead worker's messages back and move due ones;
- scripts + lua/: the Lua these run inside Redis, called by SHA; keys: every key name.

Deliveries are recorded per worker under a lease, not in kombu's time-windowed unacked
index: a message goes back to its queue when its worker dies, never while it lives.
kombu's own unacked index is still swept with its old window, so messages a previous
version left there go back to their queues once (the upgrade path).

Every kombu internal replaced is a record in platform_core/config/fences.py, named at its
place (``fence: <id>``); tests/unit/test_upstream_fence.py fails when the installed kombu
is not the version they were verified with.
"""

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

from platform_core.broker import clients, silent_hosts
from platform_core.broker.channel import Channel
from platform_core.config.environment import DEFAULTS


# fence: kombu-redis-poller-acks
class MultiChannelPoller(kombu_redis.MultiChannelPoller):
    def maybe_check_brpop_health(self):
        # A fetch kombu drops for having no reply marks its host silent for the whole
        # process (silent_hosts): its other connections there do not each wait it out.
        waiting = [  # _in_poll: the fetch's connection, or kombu's True/None
            channel._in_poll
            for channel in self._channels
            if getattr(channel._in_poll, "_sock", None) is not None
        ]
        super().maybe_check_brpop_health()
        for connection in waiting:
            if connection._sock is None and connection.host:
                silent_hosts.mark((connection.host, int(connection.port)))
        self._fail_channels_on_silent_hosts()

    def _fail_channels_on_silent_hosts(self):
        # A host marked silent by any thread of this process (a lease renewal, a promoter
        # turn, a task's write) fails the channels' own connections there now: the
        # consumer then reconnects through the sentinels at once, not at its next fetch
        # (none is sent while the prefetch is full) or acknowledgement — measured: with one
        # process busy through a failover, the worker learnt of it 6 s after the power-off
        # and was back 3.4 s after the promotion. Raised from this timer, the error
        # reaches Celery's consumer as a connection loss (hub.propagate_errors).
        for channel in self._channels:
            for client in (channel.__dict__.get("client"), channel.__dict__.get("subclient")):
                connection = getattr(client, "connection", None)
                if getattr(connection, "went_silent", lambda: None)() is not None:
                    connection.fail_as_silent()

    def on_poll_start(self):
        super().on_poll_start()  # fetches carry the acknowledgements with them
        for channel in self._channels:
            waits, channel._fetch_waits = channel._fetch_waits, False
            if waits and not channel.qos.acks_due():
                continue  # a fetch soon carries them (Channel._fetch_can_wait)
            channel.qos.flush_acks()


# fence: kombu-redis-poller-acks (the poller, and acks deferred only inside an event loop)
class Transport(kombu_redis.Transport):
    Channel = Channel
    # Acks wait for the end of the event-loop turn only when there is a loop to end it.
    defers_acks = False
    loop = None  # the worker's event loop (kombu's Hub), once registered with it

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cycle = MultiChannelPoller()

    def register_with_event_loop(self, connection, loop):
        super().register_with_event_loop(connection, loop)
        self.defers_acks = True
        self.loop = loop


# fence: kombu-redis-sentinel
class SentinelChannel(Channel, kombu_redis.SentinelChannel):
    """The platform's channel on a primary named by Sentinel (``sentinel://`` URLs).

    kombu's SentinelChannel builds its pool from every sentinel in the URL (asked in
    turn, on every new connection: a failover is followed by the next reconnect). Here
    the pool comes from clients.Sentinel (its "no primary" error names every sentinel
    tried), and the sentinels take the primary's password unless ``sentinel_kwargs``
    says otherwise, so no second copy of the secret sits in the transport options.
    """

    from_transport_options = tuple(
        dict.fromkeys(
            Channel.from_transport_options + kombu_redis.SentinelChannel.from_transport_options
        )
    )
    master_name = DEFAULTS.broker_master_name  # celery_factory: PLATFORM_BROKER_MASTER_NAME

    def _private_pool(self):
        return self._sentinel_managed_pool(private=True)

    def _sentinel_managed_pool(self, asynchronous=False, private=False):
        connparams = self._connparams(asynchronous)
        connection = {
            key: value
            for key, value in connparams.items()
            if key not in ("host", "port", "db", "username", "password")
        }
        url = clients.SentinelURL.parse(";".join(self.connection.client.alt))
        sentinel = clients.Sentinel(
            url.addresses,
            min_other_sentinels=getattr(self, "min_other_sentinels", 0),
            sentinel_kwargs=getattr(self, "sentinel_kwargs", None)
            or clients.sentinel_kwargs_from(connparams),
            **connection,
        )
        # Kept so that kombu's _disconnect_pools closes the sentinel connections too (a
        # private pool's owner closes its own).
        if not private:
            manager = "_async_sentinel_manager" if asynchronous else "_sentinel_manager"
            setattr(self, manager, sentinel)
        credentials = {
            key: connparams[key] for key in ("username", "password") if connparams.get(key)
        }
        return sentinel.master_for(
            self.master_name, redis.Redis, db=connparams["db"], **credentials
        ).connection_pool


class SentinelTransport(Transport):
    Channel = SentinelChannel
    default_port = clients.SentinelURL.DEFAULT_PORT
    driver_name = "sentinel"


# fence: kombu-priority-keys
def priority_keys(queue: str) -> dict[int, str]:
    """The Redis list of each priority step of ``queue`` (kombu's Channel._q_for_pri)."""
    return {pri: f"{queue}{Channel.sep}{pri}" if pri else queue for pri in Channel.priority_steps}


def install() -> None:
    """Make redis://, rediss:// and sentinel:// URLs use these transports in this process (kombu's
    alias registry).

    fence: kombu-transport-alias
    """
    TRANSPORT_ALIASES["redis"] = "platform_core.broker.transport:Transport"
    TRANSPORT_ALIASES["rediss"] = "platform_core.broker.transport:Transport"  # TLS
    TRANSPORT_ALIASES["sentinel"] = "platform_core.broker.transport:SentinelTransport"
