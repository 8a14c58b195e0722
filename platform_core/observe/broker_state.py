"""What the broker itself looks like: the primary's replicas and their lag, and, with a
Sentinel URL, whether the sentinels have a quorum and how many failovers they have done.

Read by the metrics on each scrape and by ``manage.py queues``; two round trips to the
primary (INFO replication, HGET of the clock's jumps) plus two per sentinel asked.
"""

from dataclasses import dataclass, field

import redis

from platform_core.broker import clients, keys
from platform_core.config.queues import QUEUES


@dataclass(frozen=True)
class Replica:
    address: str
    state: str
    lag_seconds: int


@dataclass(frozen=True)
class SentinelView:
    quorum_ok: bool  # SENTINEL CKQUORUM: enough sentinels reachable to fail over
    failover_epoch: int  # the master's config-epoch: one more on every failover
    reachable: int  # sentinels that answered
    listed: int  # sentinels in the URL


@dataclass(frozen=True)
class BrokerState:
    primary: str
    replicas: list[Replica] = field(default_factory=list)
    clock_jumps: int = 0  # failovers whose clock gap was too large to absorb
    sentinels: SentinelView | None = None

    @property
    def replicas_online(self) -> int:
        return sum(1 for replica in self.replicas if replica.state == "online")

    @property
    def worst_lag_seconds(self) -> int:
        return max((replica.lag_seconds for replica in self.replicas), default=0)


def _replicas(info: dict) -> list[Replica]:
    found = []
    for name, value in info.items():
        if name.startswith("slave") and isinstance(value, dict):
            found.append(
                Replica(
                    f"{value.get('ip')}:{value.get('port')}",
                    str(value.get("state", "?")),
                    int(value.get("lag", 0)),
                )
            )
    return found


def _sentinel_view(sentinel: clients.Sentinel, master_name: str) -> SentinelView:
    reachable, quorum_ok, epoch = 0, False, 0
    for node in sentinel.sentinels:
        try:
            master = node.sentinel_master(master_name)
        except redis.ResponseError:
            reachable += 1  # it answered, but knows no such master
            continue
        except redis.RedisError:
            continue
        reachable += 1
        epoch = max(epoch, int(master.get("config-epoch", 0)))
        try:
            node.execute_command("SENTINEL", "CKQUORUM", master_name)
            quorum_ok = True
        except redis.RedisError:
            pass  # NOQUORUM: this sentinel sees too few others to authorize a failover
    return SentinelView(quorum_ok, epoch, reachable, len(sentinel.sentinels))


def _clock_jumps(client: redis.Redis) -> int:
    """Changes of primary whose gap a clock could not absorb, summed over every clock."""
    clocks = [keys.Room(queue).clock for queue in QUEUES] + [keys.BEAT_CLOCK]
    with client.pipeline(transaction=False) as pipe:
        for clock in clocks:
            pipe.hget(clock, "jumps")
        return sum(int(jumps or 0) for jumps in pipe.execute())


def read_broker_state(client: redis.Redis, sentinel: clients.Sentinel | None, master_name: str):
    info = client.info("replication")
    kwargs = client.connection_pool.connection_kwargs
    primary = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    if sentinel is not None:
        primary = "{}:{}".format(*sentinel.discover_master(master_name))
    return BrokerState(
        primary=primary,
        replicas=_replicas(info),
        clock_jumps=_clock_jumps(client),
        sentinels=_sentinel_view(sentinel, master_name) if sentinel is not None else None,
    )
