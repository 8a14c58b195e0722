"""The platform's clock across a change of primary whose clock differs (lua/clock_checked.lua).

A primary with a lease and a delayed message, a replica whose clock runs ahead of (or
behind) the primary's by more than the lease, the primary killed and the replica
promoted: no lease expires and the delayed message is moved no earlier than it was due,
on real redis-server processes (the replica's clock moved with datefudge).
"""

import time

import pytest
import redis

from harness.processes import RedisServer, free_port, wait_for
from platform_core.broker import keys
from platform_core.broker.leases import lease_keys, sweep
from platform_core.broker.scripts import PROMOTE, RENEW

LEASE_MS = 15_000
DUE_IN_MS = 6_000
QUEUE = "cert"
ROOM = keys.Room(QUEUE)
LEASE_KEYS = lease_keys(ROOM)


def host_time_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


@pytest.fixture
def primary_and_replica(tmp_path, request):
    started = []

    def start(skew=0, replica_of=None):
        port = free_port()
        # A replica syncs at once (Redis 7 waits 5 s for more replicas by default).
        extra = ("--repl-diskless-sync-delay", "0")
        if replica_of:
            extra += ("--replicaof", "127.0.0.1", str(replica_of.port))
        server = RedisServer(tmp_path / str(port), port, clock_skew_seconds=skew, extra_args=extra)
        server.directory.mkdir()
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.kill_9()


def fail_over(primary, replica) -> redis.Redis:
    """Wait until the replica holds everything, kill the primary, promote the replica."""
    assert primary.client().execute_command("WAIT", 1, 5000) == 1
    primary.kill_9()
    promoted = replica.client()
    promoted.execute_command("REPLICAOF", "NO", "ONE")
    return promoted


def renew(client, worker="w1"):
    return RENEW(client, LEASE_KEYS, (worker, LEASE_MS, QUEUE, "new"), clock=ROOM.clock)


def sweep_room(client):
    return sweep(client, ROOM)


def promote(client):
    return PROMOTE(client, (keys.delayed(QUEUE), QUEUE), (500,), clock=ROOM.clock)


@pytest.mark.parametrize("skew", [20, -20], ids=["replica ahead 20 s", "replica behind 20 s"])
def test_a_skewed_new_primary_expires_no_lease_and_moves_nothing_early(primary_and_replica, skew):
    primary = primary_and_replica()
    replica = primary_and_replica(skew=skew, replica_of=primary)
    old = primary.client()
    # The skew is real: the replica's own clock differs from the primary's by ~skew.
    assert abs(host_time_ms(replica.client()) - host_time_ms(old) - skew * 1000) < 2000

    renew(old)
    old.zadd(keys.delayed(QUEUE), {"the delayed message": host_time_ms(old) + DUE_IN_MS})
    promote(old)  # the platform's clock reads (and records) the old primary's time
    parked_at = time.monotonic()

    new = fail_over(primary, replica)
    # Read with the new host's own clock, the lease would look expired (ahead) — so the
    # test can fail: without the platform's clock the sweep below would take it.
    lease_expiry = new.zscore(ROOM.leases, "w1")
    if skew > 0:
        assert host_time_ms(new) > lease_expiry

    assert sweep_room(new)[0] == 0, "a lease expired because the new primary's clock differs"
    # The outage between the old primary's last reading and the new one's first is
    # absorbed with the skew (the platform's clock pauses through a failover).
    outage_ms = (time.monotonic() - parked_at) * 1000
    moved, next_due_ms = promote(new)
    assert moved == 0
    assert next_due_ms > 0
    clock = new.hgetall(ROOM.clock)
    # The skew and the outage, absorbed (1 s: the hosts' own clocks read apart).
    assert -skew * 1000 - outage_ms - 1000 < int(clock[b"offset"]) < -skew * 1000 + 1000
    assert b"jumps" not in clock

    wait_for(lambda: promote(new)[0] == 1 or new.llen(QUEUE) == 1, 20, "the delayed message")
    waited = time.monotonic() - parked_at
    assert new.llen(QUEUE) == 1
    # Not early; late by at most the outage plus a poll.
    assert waited >= DUE_IN_MS / 1000 - 0.1, f"moved after {waited:.1f} s, due after 6 s"
    assert waited < DUE_IN_MS / 1000 + outage_ms / 1000 + 1.5
    assert renew(new) == 1  # the worker's lease is still its own


def test_a_jump_beyond_the_bound_is_counted_and_kept(primary_and_replica):
    primary = primary_and_replica()
    replica = primary_and_replica(skew=120, replica_of=primary)
    renew(primary.client())
    new = fail_over(primary, replica)
    renew(new)
    clock = new.hgetall(ROOM.clock)
    assert int(clock[b"jumps"]) == 1  # taken as elapsed time, and said so
    assert abs(int(clock[b"offset"])) < 2000


def test_a_primary_restarted_on_its_own_host_keeps_real_time(primary_and_replica):
    """Not promoted, same clock: the seconds it was down count (delays due meanwhile are
    due at once, not pushed back by the outage)."""
    primary = primary_and_replica()
    renew(primary.client())
    primary.stop_cleanly()
    time.sleep(2)
    primary.start()
    renew(primary.client())
    clock = primary.client().hgetall(ROOM.clock)
    assert int(clock[b"offset"]) == 0
    assert b"jumps" not in clock
