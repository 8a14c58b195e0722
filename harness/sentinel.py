"""A Redis primary, one replica and three Sentinels on loopback: a broker that can lose its
host. Every process has the same password; Sentinel takes a primary for dead after 2 s.
Replication is confirmed by the clients (PLATFORM_BROKER_MIN_REPLICAS: WAIT), not by
``min-replicas-to-write``, as deployed (docs/reliability.md, "Broker failover").

Each process is a redis-server with its own config file in its own directory (Sentinel and
a promoted or demoted Redis rewrite theirs), so a killed one starts again as it was left.
"""

import signal
import subprocess
import time
from pathlib import Path

import redis
from redis.sentinel import Sentinel

from harness.processes import free_port, wait_for

MASTER_NAME = "platform"
DOWN_AFTER_MS = 2000
# Also how long an election may take: three Sentinels on one host see the primary go at the
# same millisecond and can split their votes; the next try comes 2 x this later (10 s with 5000).
FAILOVER_TIMEOUT_MS = 2000
QUORUM = 2


class Node:
    """One redis-server (data node or Sentinel) on 127.0.0.1, from its config file."""

    def __init__(self, name: str, directory: Path, port: int, password: str, sentinel: bool):
        self.name, self.directory, self.port = name, directory, port
        self.password, self.sentinel = password, sentinel
        self.config = directory / ("sentinel.conf" if sentinel else "redis.conf")
        self.log_path = directory / f"{name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self):
        argv = ["redis-server", str(self.config)] + (["--sentinel"] if self.sentinel else [])
        self.process = subprocess.Popen(
            argv, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        wait_for(self.ping, 10, f"{self.name} to start")

    def client(self, **kwargs) -> redis.Redis:
        return redis.Redis(
            *self.address,
            password=self.password,
            socket_timeout=1,
            socket_connect_timeout=1,
            **kwargs,
        )

    def ping(self) -> bool:
        try:
            with self.client() as client:
                return client.ping()
        except redis.RedisError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def role(self) -> str:
        with self.client() as client:
            return client.info("replication")["role"]

    def kill_9(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def freeze(self):
        """SIGSTOP: the process answers nothing and closes nothing, as a host that lost
        its power or its network looks from outside (no RST, no FIN: every open
        connection to it is left half-open; a new one is accepted by the kernel and then
        never answered). ``kill_9`` ends it."""
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self):
        """SIGCONT: answers again, every connection still open (a blip, not a failover)."""
        self.process.send_signal(signal.SIGCONT)

    def stop(self):
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill_9()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class BrokerGroup:
    """The broker as deployed with Sentinel: ``start()``, then ``kill_primary()`` or
    ``silence_primary()``, ``wait_for_new_primary()`` and ``restart_old_primary()`` (it
    rejoins as a replica)."""

    def __init__(
        self,
        directory: Path,
        password: str = "failover-drill-pw",  # noqa: S107
        replicas: int = 1,
    ):
        self.directory, self.password = Path(directory), password
        self.nodes = [self._node(f"redis-{n}", sentinel=False) for n in range(1, replicas + 2)]
        self.sentinels = [self._node(f"sentinel-{n}", sentinel=True) for n in (1, 2, 3)]
        self._primary, self.killed = self.nodes[0], None
        self.frozen: list[Node] = []  # silenced with the primary's host

    def _node(self, name: str, sentinel: bool) -> Node:
        directory = self.directory / name
        directory.mkdir(parents=True)
        return Node(name, directory, free_port(), self.password, sentinel)

    # -- set-up -------------------------------------------------------------------------

    def start(self):
        primary, *replicas = self.nodes
        self._write_redis_config(primary, replica_of=None)
        primary.start()
        for replica in replicas:
            self._write_redis_config(replica, replica_of=primary)
            replica.start()
        wait_for(lambda: self._replicas_of(primary) >= len(replicas), 20, "the replicas to sync")
        for sentinel in self.sentinels:
            self._write_sentinel_config(sentinel, primary)
            sentinel.start()
        # Every Sentinel knows the replica and the other two Sentinels before any fault.
        wait_for(self._sentinels_settled, 30, "the Sentinels to find each other and the replica")
        return self

    def _write_redis_config(self, node: Node, replica_of: Node | None):
        lines = [
            f"port {node.port}",
            "bind 127.0.0.1",
            f'dir "{node.directory}"',
            f'logfile "{node.log_path}"',
            f'requirepass "{self.password}"',
            f'masterauth "{self.password}"',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "maxmemory-policy noeviction",
            # A rejoining replica syncs at once (the default waits 5 s for others to join).
            "repl-diskless-sync-delay 0",
        ]
        if replica_of is not None:
            lines.append(f"replicaof 127.0.0.1 {replica_of.port}")
        node.config.write_text("\n".join(lines) + "\n")

    def _write_sentinel_config(self, sentinel: Node, primary: Node):
        lines = [
            f"port {sentinel.port}",
            "bind 127.0.0.1",
            f'dir "{sentinel.directory}"',
            f'logfile "{sentinel.log_path}"',
            f'requirepass "{self.password}"',
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary.port} {QUORUM}",
            f'sentinel auth-pass {MASTER_NAME} "{self.password}"',
            f'sentinel sentinel-pass "{self.password}"',
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {MASTER_NAME} 1",
        ]
        sentinel.config.write_text("\n".join(lines) + "\n")

    def _replicas_of(self, node: Node) -> int:
        try:
            with node.client() as client:
                info = client.info("replication")
        except redis.RedisError:
            return 0
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        return sum(1 for replica in replicas if replica.get("state") == "online")

    def _sentinels_settled(self) -> bool:
        try:
            for sentinel in self.sentinels:
                with sentinel.client() as client:
                    master = client.sentinel_master(MASTER_NAME)
                    replicas = len(self.nodes) - 1
                    if master["num-slaves"] < replicas or master["num-other-sentinels"] < 2:
                        return False
        except redis.RedisError:
            return False
        return True

    # -- what clients are given ---------------------------------------------------------

    def sentinel_url(self, db: int = 0) -> str:
        """kombu's form: one ``sentinel://`` per Sentinel, separated by ``;``."""
        return ";".join(
            f"sentinel://:{self.password}@127.0.0.1:{sentinel.port}/{db}"
            for sentinel in self.sentinels
        )

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [sentinel.address for sentinel in self.sentinels]

    def transport_options(self) -> dict:
        """kombu's SentinelTransport: the master's name, the Sentinels' password."""
        return {"master_name": MASTER_NAME, "sentinel_kwargs": {"password": self.password}}

    def client(self) -> redis.Redis:
        """A client on whichever Redis Sentinel names as primary now (asked on every
        connection)."""
        sentinel = Sentinel(
            self.sentinel_addresses(),
            sentinel_kwargs={"password": self.password, "socket_timeout": 1},
            password=self.password,
            socket_timeout=2,
            socket_connect_timeout=1,
        )
        return sentinel.master_for(MASTER_NAME)

    # -- the roles now --------------------------------------------------------------------

    def primary(self) -> Node:
        return self._primary

    def primary_by_sentinels(self) -> tuple[str, int] | None:
        """The primary a majority of the live Sentinels names, or None."""
        votes: dict[tuple[str, int], int] = {}
        for sentinel in self.sentinels:
            if not sentinel.alive() or sentinel in self.frozen:
                continue
            try:
                with sentinel.client() as client:
                    address = client.sentinel_get_master_addr_by_name(MASTER_NAME)
            except redis.RedisError:
                continue
            if not address:
                continue
            host = address[0].decode() if isinstance(address[0], bytes) else address[0]
            address = (host, int(address[1]))
            votes[address] = votes.get(address, 0) + 1
        best = max(votes.items(), key=lambda item: item[1], default=None)
        return best[0] if best and best[1] >= QUORUM else None

    # -- the fault ------------------------------------------------------------------------

    def kill_primary(self) -> float:
        """SIGKILL the primary, as when its process dies (the kernel closes its
        connections: clients see a reset at once); returns when (time.time())."""
        self.killed = self._primary
        self.killed.kill_9()
        return time.time()

    def silence_primary(self) -> float:
        """Freeze the primary and the first Sentinel together, as when the host they share
        is powered off (clients see nothing at all: :meth:`Node.freeze`); returns when.
        The first Sentinel is the one every client asks first."""
        self.killed = self._primary
        self.frozen = [self._primary, self.sentinels[0]]
        for node in self.frozen:
            node.freeze()
        return time.time()

    def wait_for_new_primary(self, timeout: float = 30) -> Node:
        """Until the Sentinels name a former replica and it answers as a primary."""
        old = self.killed or self._primary
        candidates = {node.address: node for node in self.nodes if node is not old}

        def promoted():
            new = candidates.get(self.primary_by_sentinels())
            try:
                return new if new is not None and new.role() == "master" else None
            except redis.RedisError:
                return None

        self._primary = wait_for(
            promoted, timeout, "the Sentinels to promote a replica", interval=0.05
        )
        return self._primary

    def wait_for_replicas(self, count: int = 1, timeout: float = 30):
        """Until the primary has ``count`` replicas in sync (enqueues confirmed again)."""
        wait_for(
            lambda: self._replicas_of(self._primary) >= count,
            timeout,
            f"{count} replica(s) of {self._primary.name} in sync",
            interval=0.05,
        )

    def restart_old_primary(self, timeout: float = 30) -> Node:
        """Start the killed Redis again, as a replica of the new primary (what Sentinel
        would make of it anyway), and wait until it is in sync: from then on enqueues are
        confirmed again (the new primary's only possible replica)."""
        old = self.killed
        assert old is not None, "kill_primary() or silence_primary() first"
        for node in self.frozen:  # silenced: the host's power comes back as a fresh start
            node.kill_9()
        self._write_redis_config(old, replica_of=self._primary)
        old.start()
        for sentinel in set(self.frozen) & set(self.sentinels):
            sentinel.start()
        self.frozen = []
        wait_for(
            lambda: self._replicas_of(self._primary) >= len(self.nodes) - 1,
            timeout,
            f"{old.name} to sync from {self._primary.name}",
            interval=0.05,
        )
        self.killed = None
        return old

    def stop(self):
        for node in [*self.sentinels, *self.nodes]:
            if node.alive():
                node.kill_9()

    def logs(self) -> str:
        return "\n".join(
            f"--- {node.name}\n{node.log()}" for node in [*self.nodes, *self.sentinels]
        )
