"""Redis ACL users, one per role: what each process may read, write, publish and hear.

The rules follow the key layout (broker.keys): a queue's workers own its lists and its
room (``platform:queue:<queue>:*``); a sender may only push onto the queues its site may
send to; nobody but the operator lists keys (no SCAN, no KEYS), reconfigures Redis or
flushes it. Redis 7 selectors (the parenthesised groups) give a user a second, narrower
set of commands on other keys or channels: e.g. a worker may LPUSH to another site's
queue (with nothing else allowed on it), or SUBSCRIBE to a result's channel but not to
the events every worker publishes.

``python -m platform_core.broker.acl --users`` prints the user names (Ansible derives its
credential list from it); ``python -m platform_core.broker.acl`` reads a JSON request on
stdin — ``{"passwords": {user: [sha256 hex, ...]}, "sends": {queue: [queue, ...]},
"db": 0}`` — and prints the ACL file (``--sentinel``: sentinel.conf's user lines). Two
hashes for one user are two valid passwords (rotation, docs/operations.md). What a leaked
credential of each role can and cannot do is in docs/reliability.md ("Security"), tested
in tests/integration/test_acl.py.
"""

import argparse
import json
import sys
from collections.abc import Iterable, Mapping

from platform_core.broker import keys
from platform_core.config.queues import LEGACY_INDEXES, LONG_RUNNING, QUEUES

ADMIN = "admin"  # the operator and Ansible: everything
REPLICATION = "replication"  # a replica's masteruser
SENTINEL = "sentinel"  # Sentinel's own connections to Redis
BEAT = "beat"
FLOWER = "flower"
METRICS = "metrics"  # read-only: the metrics collector, `manage.py queues`
WORKER_PREFIX = "worker-"  # + queue: that queue's workers and its site's producers


def worker_user(queue: str) -> str:
    return f"{WORKER_PREFIX}{queue}"


USERS = (ADMIN, REPLICATION, SENTINEL, BEAT, FLOWER, METRICS, *map(worker_user, QUEUES))

# kombu's names (kombu.pidbox, celery.events): the control broadcast, its replies, the
# task events. Reply queues are named by the asking process' random id.
CONTROL_EXCHANGE = "celery.pidbox"
REPLY_EXCHANGE = "reply.celery.pidbox"
EVENT_EXCHANGE = "celeryev"
REPLY_QUEUES = "*.reply.celery.pidbox"
BINDINGS = "_kombu.binding."
RESULTS = "celery-task-meta-*"  # Celery's result keys and the channels they are sent on

# What a client of each data role may run. Categories first, then what is taken out:
# @dangerous covers KEYS, FLUSH*, CONFIG, DEBUG, MONITOR, SHUTDOWN, REPLICAOF, CLIENT KILL
# and the like; SCAN is not in it but lists every key name, so it goes too.
_DATA = (
    "-@all",
    "+@connection",
    "+@read",
    "+@write",
    "+@keyspace",
    "+@scripting",
    "+@transaction",
    "+publish",
    "-@dangerous",
    "-@admin",
    "-scan",
    "-script|flush",
    "-script|kill",
    "-function",
    "+info",  # the clock scripts ask who the primary is (lua/clock_checked.lua)
    "+wait",  # acknowledged means replicated (PLATFORM_BROKER_MIN_REPLICAS)
    "+time",  # every clock reading is Redis TIME (lua/clock.lua, kombu's binding expiry)
)
_READ_ONLY = (
    "-@all",
    "+@connection",
    "-@dangerous",
    "+ping",
    "+time",
    "+info",
    "+llen",
    "+lindex",
    "+zcard",
    "+zrange",
    "+hget",
    "+hgetall",
    "+get",
)
# A sender declares the queue it sends to (kombu: LLEN for its size, SISMEMBER for its
# binding, which only the queue's workers write: broker.channel's kombu-redis-bind).
_PUSH = ("-@all", "+lpush", "+llen")
# A sender's unique enqueue into another site's queue (lua/enqueue_unique.lua).
_UNIQUE_SEND = ("-@all", "+evalsha", "+eval", "+script|load", "+get", "+set")
# Sentinel's needs, as Redis' Sentinel documentation lists them.
_SENTINEL = (
    "-@all",
    "allchannels",
    "+multi",
    "+slaveof",
    "+ping",
    "+exec",
    "+subscribe",
    "+config|rewrite",
    "+role",
    "+publish",
    "+info",
    "+client|setname",
    "+client|kill",
    "+script|kill",
)
_REPLICATION = ("-@all", "+psync", "+replconf", "+ping")
# On a Sentinel, a client only asks where the primary is and how the sentinels are
# (observe.broker_state): no SENTINEL SET, REMOVE, RESET, FAILOVER or CONFIG.
_SENTINEL_CLIENT = (
    "-@all",
    "+ping",
    "+auth",
    "+hello",
    "+client|setname",
    "+sentinel|get-master-addr-by-name",
    "+sentinel|masters",
    "+sentinel|master",
    "+sentinel|sentinels",
    "+sentinel|replicas",
    "+sentinel|slaves",
    "+sentinel|ckquorum",
)
# The other sentinels: hello messages on their channel and the votes of a failover.
_SENTINEL_PEER = (
    "&__sentinel__:hello",
    "-@all",
    "+ping",
    "+auth",
    "+hello",
    "+client|setname",
    "+publish",
    "+subscribe",
    "+info",
    "+sentinel|is-master-down-by-addr",
    "+sentinel|get-master-addr-by-name",
    "+sentinel|masters",
    "+sentinel|master",
    "+sentinel|replicas",
    "+sentinel|slaves",
    "+sentinel|sentinels",
)


def queue_lists(queue: str, flag: str = "") -> tuple[str, str]:
    """Key patterns of a queue's list and its priority steps' lists."""
    return (f"{flag}~{queue}", f"{flag}~{queue}{keys.PRIORITY_SEPARATOR}*")


def _channel(db: int, name: str) -> str:
    return f"/{db}.{name}"  # kombu's fanout prefix (keyprefix_fanout)


def _selector(*rules: str) -> str:
    return "(" + " ".join(rules) + ")"


def _pushes_to(queues: Iterable[str]) -> tuple[str, str]:
    """Selectors: LPUSH, and nothing else, onto each of ``queues``; and the uniqueness keys
    of their rooms, through the unique enqueue (lua/enqueue_unique.lua: GET, SET, then
    the LPUSH the first selector allows) — nothing else of those rooms."""
    queues = sorted(queues)
    patterns = [pattern for queue in queues for pattern in queue_lists(queue, "%W")]
    uniques = [f"~{keys.Room(queue).unique_prefix}*" for queue in queues]
    return _selector(*patterns, *_PUSH), _selector(*uniques, *_UNIQUE_SEND)


def _events_and_control(db: int) -> tuple[str, ...]:
    """Rules every Celery process needs: publish task events, hear the control broadcast
    and answer it. Only Flower may broadcast (rules() adds it): a worker's credentials
    cannot shut down or revoke on other sites' workers."""
    return (
        f"&{_channel(db, EVENT_EXCHANGE)}/*",  # PUBLISH only: no +subscribe at top level
        f"%R~{BINDINGS}*",  # a producer looks up an exchange's queues
        # kombu's expiry of the control and event queues' binding tables (shared).
        "~_kombu.binding_deadlines",
        "%R~_kombu.binding_permanent.*",
        f"~{BINDINGS}{CONTROL_EXCHANGE}",
        f"~{BINDINGS}{REPLY_EXCHANGE}",
        f"~{BINDINGS}{EVENT_EXCHANGE}",
        *queue_lists(REPLY_QUEUES),
        # Hear the control broadcast, and the workers' heartbeats (Celery's gossip), by
        # the patterns kombu subscribes with — never every event (task events carry the
        # arguments' repr).
        _selector(
            f"&{_channel(db, CONTROL_EXCHANGE)}",
            f"&{_channel(db, EVENT_EXCHANGE)}/worker.*",
            "-@all",
            "+psubscribe",
            "+punsubscribe",
        ),
        *queue_lists(f"{EVENT_EXCHANGE}.*"),  # the event receivers' queues (kombu names)
    )


def _results() -> tuple[str, ...]:
    """Store results; hear a result's channel only by its name (a task id), never by
    pattern, so nobody can listen to every site's results."""
    return (
        f"~{RESULTS}",
        f"&{RESULTS}",
        _selector(f"&{RESULTS}", "-@all", "+subscribe", "+unsubscribe"),
    )


def rules(user: str, sends: Mapping[str, Iterable[str]], db: int = 0) -> tuple[str, ...]:
    """The ACL rules of ``user`` (without its passwords)."""
    if user == ADMIN:
        return ("~*", "&*", "+@all")
    if user == REPLICATION:
        return _REPLICATION
    if user == SENTINEL:
        return _SENTINEL
    if user == METRICS:
        rooms = f"%R~{keys.QUEUE_PREFIX}*"
        lists = [pattern for queue in QUEUES for pattern in queue_lists(queue, "%R")]
        return (*_READ_ONLY, *lists, rooms, f"%R~{keys.BEAT_PREFIX}*")
    if user == FLOWER:
        # Events and control; queue lengths (its Broker tab) but not their contents.
        lengths = [pattern for queue in QUEUES for pattern in queue_lists(queue, "%R")]
        return (
            *_DATA,
            "-@write",  # but what kombu's control and event queues write:
            "+lpush",
            "+del",
            "+pexpire",
            "+sadd",
            "+srem",
            "+zadd",
            "+zrem",
            "+brpop",  # its control replies
            "+set",
            *_events_and_control(db),
            f"&{_channel(db, CONTROL_EXCHANGE)}",  # it broadcasts (inspect, revoke, …)
            _selector(f"&{_channel(db, EVENT_EXCHANGE)}/*", "-@all", "+psubscribe"),
            _selector(*lengths, "-@all", "+llen"),
        )
    if user == BEAT:
        return (
            *_DATA,
            f"~{keys.BEAT_PREFIX}*",
            *_events_and_control(db),
            *_pushes_to(QUEUES),
        )
    queue = user.removeprefix(WORKER_PREFIX)
    if user == queue or queue not in QUEUES:
        raise ValueError(f"unknown ACL user {user!r}; known: {', '.join(USERS)}")
    others = set(sends.get(queue, QUEUES)) - {queue}
    return (
        *_DATA,
        *queue_lists(queue),
        f"~{keys.Room(queue).prefix}*",
        f"~{BINDINGS}{queue}",  # its queue's binding, declared at start
        f"~_kombu.binding_permanent.{queue}",
        *queue_lists(f"{queue}@*.{CONTROL_EXCHANGE}"),  # its workers' control queues
        *_results(),
        *_events_and_control(db),
        f"~{keys.LOCK_PREFIX}*",
        f"~{keys.DRILL_PREFIX}*",
        # kombu's unacked index (what a version before leases left; fence
        # kombu-legacy-unacked-index): one for the four sites, so shared by their workers.
        f"~{LEGACY_INDEXES[LONG_RUNNING if queue == LONG_RUNNING else 'site'][0]}*",
        *(_pushes_to(others) if others else ()),
    )


def acl_file(
    passwords: Mapping[str, Iterable[str]], sends: Mapping[str, Iterable[str]], db: int = 0
) -> str:
    """The ACL file: the default user off, then every user with its password hashes.
    A user without a password is written off (it cannot log in)."""
    unknown = set(passwords) - set(USERS)
    if unknown:
        raise ValueError(f"passwords for unknown users {sorted(unknown)}; known: {USERS}")
    bad = {q for queue, targets in sends.items() for q in (queue, *targets)} - set(QUEUES)
    if bad:
        raise ValueError(f"sends names unknown queues {sorted(bad)}; queues: {QUEUES}")
    # The default user is off (no client can log in as it) but keeps every permission:
    # Redis 7.0 (Debian 12's 7.0.15) replays the append-only file's MULTI/EXEC blocks, and
    # with them every script's writes, with the default user's permissions; restricted,
    # each is refused at a restart and what it wrote is gone (tests/integration/test_acl).
    lines = ["user default off resetpass ~* &* +@all"]
    for user in USERS:
        hashes = [f"#{digest}" for digest in passwords.get(user, ())]
        state = "on" if hashes else "off"
        head = ("user", user, state, "resetpass", "resetkeys", "resetchannels", *hashes)
        lines.append(" ".join((*head, *rules(user, sends, db))))
    return "\n".join(lines) + "\n"


def sentinel_users(passwords: Mapping[str, Iterable[str]]) -> str:
    """The ``user`` lines of sentinel.conf. Clients log in to the sentinels as they do to
    Redis (clients.sentinel_kwargs_from), so every client user is there with the same
    passwords, allowed only to ask; the sentinels log in to each other as ``sentinel``."""
    lines = ["user default off resetpass resetkeys resetchannels -@all"]
    for user in USERS:
        hashes = [f"#{digest}" for digest in passwords.get(user, ())]
        if user == REPLICATION or not hashes:
            rules: tuple[str, ...] = ("off",)
        elif user == ADMIN:
            rules = ("on", "~*", "&*", "+@all")
        elif user == SENTINEL:
            rules = ("on", *_SENTINEL_PEER)
        else:
            rules = ("on", *_SENTINEL_CLIENT)
        lines.append(" ".join(("user", user, "resetpass", "resetchannels", *hashes, *rules)))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", action="store_true", help="print the user names")
    parser.add_argument(
        "--sentinel", action="store_true", help="print sentinel.conf's user lines instead"
    )
    options = parser.parse_args(argv)
    if options.users:
        print("\n".join(USERS))
        return 0
    request = json.load(sys.stdin)
    if options.sentinel:
        sys.stdout.write(sentinel_users(request.get("passwords", {})))
        return 0
    sys.stdout.write(
        acl_file(request.get("passwords", {}), request.get("sends", {}), request.get("db", 0))
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
