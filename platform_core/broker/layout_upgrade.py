"""Moving what a version before per-queue rooms left in Redis into the rooms (issue 25).

Before, every queue's state shared flat keys: ``platform:delayed:<queue key>``,
``platform:held:<worker>:<queue key>``, ``platform:leases`` (and its two hashes),
``platform:rejected`` (``<queue>:<reason>``), ``platform:redelivered``,
``platform:clock``, ``platform:once``, ``platform:first_seen``. Run once, as the
``admin`` user, after every worker runs the new version (``manage.py
upgrade_broker_layout``; Ansible runs it after a deploy): delayed messages move into
their room's delayed set (due times unchanged), what a worker that died before the
upgrade still held goes back to the front of its queue marked redelivered (only what
is still held: lua/restore.lua), the clock is copied into every room (so no due time
or lease moves), counters are added to their room's, and the old keys are deleted.
Running it again finds nothing to do.
"""

from dataclasses import dataclass, field

import redis

from platform_core.broker import keys
from platform_core.broker.scripts import RESTORE
from platform_core.broker.transport import priority_keys

OLD = keys.PREFIX
OLD_DELAYED = OLD + "delayed:"
OLD_HELD = OLD + "held:"
OLD_LEASES = (OLD + "leases", OLD + "lease_sources", OLD + "lease_renewed")
OLD_REJECTED, OLD_REDELIVERED = OLD + "rejected", OLD + "redelivered"
OLD_CLOCK, OLD_ONCE, OLD_FIRST_SEEN = OLD + "clock", OLD + "once", OLD + "first_seen"


@dataclass
class Moved:
    delayed: int = 0  # messages moved into a room's delayed set
    handed_back: int = 0  # held by a dead worker, back at the front of their queue
    counters: int = 0
    left: list[str] = field(default_factory=list)  # old keys of queues not known here

    def __str__(self) -> str:
        text = (
            f"{self.delayed} delayed message(s) moved into their rooms, {self.handed_back} "
            f"held message(s) handed back, {self.counters} counter(s) moved"
        )
        if self.left:
            text += f"; left alone (not a queue of this platform): {', '.join(self.left)}"
        return text


def upgrade(client: redis.Redis, queues) -> Moved:
    moved = Moved()
    queue_keys = {key: queue for queue in queues for key in priority_keys(queue).values()}
    clock = client.hgetall(OLD_CLOCK)
    for room in {keys.Room(queue) for queue in queues}:
        if clock and not client.exists(room.clock):
            client.hset(room.clock, mapping=clock)
    if clock and not client.exists(keys.BEAT_CLOCK):
        client.hset(keys.BEAT_CLOCK, mapping=clock)
    for key in queue_keys:
        old = OLD_DELAYED + key
        if client.exists(old):
            moved.delayed += client.zcard(old)
            client.zunionstore(keys.delayed(key), [keys.delayed(key), old], aggregate="MIN")
            client.delete(old)
    for old in client.scan_iter(match=OLD_HELD + "*", count=500):
        name = old.decode()
        source = next((key for key in queue_keys if name.endswith(":" + key)), None)
        if source is None:
            moved.left.append(name)
            continue
        items = client.lrange(old, 0, -1)
        moved.handed_back += RESTORE(client, [k for _ in items for k in (old, source)], items)
        client.delete(old)
    for name, count in client.hgetall(OLD_REJECTED).items():
        queue, _, reason = name.decode().rpartition(":")
        if queue in queues:
            client.hincrby(keys.Room(queue).rejected, reason, int(count))
            moved.counters += 1
    for key, count in client.hgetall(OLD_REDELIVERED).items():
        queue = queue_keys.get(key.decode())
        if queue is not None:
            client.hincrby(keys.Room(queue).redelivered, key.decode(), int(count))
            moved.counters += 1
    if client.exists(OLD_ONCE) and not client.exists(keys.ONCE):
        client.rename(OLD_ONCE, keys.ONCE)
    client.delete(*OLD_LEASES, OLD_REJECTED, OLD_REDELIVERED, OLD_CLOCK, OLD_FIRST_SEEN)
    return moved
