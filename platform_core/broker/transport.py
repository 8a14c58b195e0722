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

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

from platform_core.broker.channel import Channel


# fence: kombu-redis-poller-acks
class MultiChannelPoller(kombu_redis.MultiChannelPoller):
    def on_poll_start(self):
        super().on_poll_start()  # fetches carry the acknowledgements with them
        for channel in self._channels:
            channel.qos.flush_acks()


# fence: kombu-redis-poller-acks (the poller, and acks deferred only inside an event loop)
class Transport(kombu_redis.Transport):
    Channel = Channel
    # Acks wait for the end of the event-loop turn only when there is a loop to end it.
    defers_acks = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cycle = MultiChannelPoller()

    def register_with_event_loop(self, connection, loop):
        super().register_with_event_loop(connection, loop)
        self.defers_acks = True


# fence: kombu-priority-keys
def priority_keys(queue: str) -> dict[int, str]:
    """The Redis list of each priority step of ``queue`` (kombu's Channel._q_for_pri)."""
    return {pri: f"{queue}{Channel.sep}{pri}" if pri else queue for pri in Channel.priority_steps}


def install() -> None:
    """Make redis:// URLs use this transport in this process (kombu's alias registry).

    fence: kombu-transport-alias
    """
    TRANSPORT_ALIASES["redis"] = "platform_core.broker.transport:Transport"
