"""A real Redis high-availability set for tests and benchmarks: valkey-server data nodes (a
primary and, by default, two replicas, appendfsync always: with one replica left after a
failover, `durability = "replica"` still takes writes) and three sentinels (down-after 1 s).

Every data node is reached by its replica and by the sentinels through its own TCP proxy
(it announces the proxy's port), while a client may also connect to it directly: cutting
a proxy is a split brain (the node is cut off from its replica and the sentinels, its
clients still reach it); killing a node is a crash."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis

from bridge.local.redis_server import RedisServer, free_port, valkey_binary

SERVICE = "cbmain"
DOWN_AFTER_MS = 1000


class TcpProxy:
    """127.0.0.1:`port` → 127.0.0.1:`target`, one thread per direction; `cut()` drops
    every connection and refuses new ones until `heal()`."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.cut_off = False
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.cut_off:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=1)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
            with self._lock:
                self._socks.discard(s)

    def cut(self) -> None:
        self.cut_off = True
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def heal(self) -> None:
        self.cut_off = False

    def close(self) -> None:
        self.cut()
        self._listener.close()


class Sentinel:
    def __init__(self, data_dir: Path, monitored_port: int) -> None:
        self.dir = data_dir
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "sentinel.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {monitored_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} 4000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        log = open(self.dir / "sentinel.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [valkey_binary(), str(conf), "--sentinel", "--loglevel", "warning"],
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class HaRedis:
    """The primary and replica (each behind its proxy) and three sentinels."""

    def __init__(self, root: Path, nodes: int = 3) -> None:
        self.root = root
        self.ports = [free_port() for _ in range(nodes)]
        self.proxies = [TcpProxy(p) for p in self.ports]
        self.nodes: list[RedisServer] = []
        for i, port in enumerate(self.ports):
            extra = [
                "--replica-announce-ip",
                "127.0.0.1",
                "--replica-announce-port",
                str(self.proxies[i].port),
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
                "--repl-timeout",
                "5",
            ]
            if i > 0:
                extra += ["--replicaof", "127.0.0.1", str(self.proxies[0].port)]
            self.nodes.append(
                RedisServer(
                    root / f"node{i}",
                    port=port,
                    appendfsync="always",
                    binary=valkey_binary(),
                    extra_args=extra,
                )
            )
        self.sentinels: list[Sentinel] = []

    def start(self) -> HaRedis:
        for node in self.nodes:
            node.start()
        self.sentinels = [Sentinel(self.root / f"s{i}", self.proxies[0].port) for i in range(3)]
        self.wait_healthy()
        return self

    @property
    def sentinel_url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def url_of(self, i: int) -> str:
        """A direct URL to node `i` (not through its proxy)."""
        return f"redis://127.0.0.1:{self.ports[i]}/0"

    def role(self, i: int) -> str | None:
        if self.nodes[i].proc is None:
            return None
        conn = redis.Redis(port=self.ports[i], socket_timeout=1, socket_connect_timeout=1)
        try:
            return str(conn.info("replication")["role"])
        except (redis.RedisError, OSError):
            return None
        finally:
            conn.close()

    def primary_index(self) -> int:
        """The node the sentinels name as primary."""
        for s in self.sentinels:
            conn = redis.Redis(port=s.port, socket_timeout=1, decode_responses=True)
            try:
                _, port = conn.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                return [p.port for p in self.proxies].index(int(port))
            except (redis.RedisError, OSError, ValueError):
                continue
            finally:
                conn.close()
        raise AssertionError("no sentinel names a primary")

    def wait_healthy(self, timeout_s: float = 30) -> int:
        """Until one node is primary with the other replicating from it (link up), and
        every sentinel knows the replica and the other sentinels. Returns the primary."""
        deadline = time.time() + timeout_s
        last = ""
        while time.time() < deadline:
            try:
                p = self.primary_index()
                ok = self.role(p) == "master" and all(self._link_up(r) for r in self.replicas())
                ok = ok and all(self._sentinel_sees_all(s) for s in self.sentinels)
                if ok:
                    return p
                last = f"primary {p}, roles {[self.role(i) for i in range(len(self.nodes))]}"
            except AssertionError as exc:
                last = str(exc)
            time.sleep(0.1)
        raise AssertionError(f"the HA set did not become healthy: {last}")

    def _link_up(self, i: int) -> bool:
        conn = redis.Redis(port=self.ports[i], socket_timeout=1, decode_responses=True)
        try:
            info = conn.info("replication")
            return info.get("role") == "slave" and info.get("master_link_status") == "up"
        except (redis.RedisError, OSError):
            return False
        finally:
            conn.close()

    def _sentinel_sees_all(self, s: Sentinel) -> bool:
        conn = redis.Redis(port=s.port, socket_timeout=1, decode_responses=True)
        try:
            state = conn.sentinel_master(SERVICE)  # redis-py parses it into a dict
            return (
                int(state.get("num-slaves", 0)) >= len(self.nodes) - 1
                and int(state.get("num-other-sentinels", 0)) >= 2
                and not state.get("is_sdown")
                and not state.get("is_odown")
            )
        except (redis.RedisError, OSError):
            return False
        finally:
            conn.close()

    def flush(self) -> None:
        p = self.wait_healthy()
        conn = redis.Redis(port=self.ports[p])
        try:
            conn.flushall()
            conn.wait(1, 5000)
        finally:
            conn.close()

    def kill(self, i: int) -> None:
        self.nodes[i].kill()

    def replicas(self) -> list[int]:
        """The nodes the sentinels do not name primary."""
        p = self.primary_index()
        return [i for i in range(len(self.nodes)) if i != p]

    def stop_replicas(self) -> list[int]:
        """SIGSTOP every replica: none acknowledges a write. Returns them for resume_node."""
        stopped = self.replicas()
        for i in stopped:
            self.stop_node(i)
        return stopped

    def stop_node(self, i: int) -> None:
        """SIGSTOP: the node hangs (a replica that stops acknowledging)."""
        proc = self.nodes[i].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGSTOP)

    def resume_node(self, i: int) -> None:
        proc = self.nodes[i].proc
        assert proc is not None
        os.kill(proc.pid, signal.SIGCONT)

    def wait_promoted(self, old: int, timeout_s: float = 30) -> float:
        """Until the sentinels name the other node primary and it says so; returns when."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            with contextlib.suppress(AssertionError):
                new = self.primary_index()
                if new != old and self.role(new) == "master":
                    return time.time()
            time.sleep(0.05)
        raise AssertionError(f"no promotion within {timeout_s} s")

    def restore(self, i: int) -> None:
        """Node `i` back (restarted if it was killed); the sentinels make it a replica."""
        if self.nodes[i].proc is None:  # back as a replica of the current primary at once
            node, primary = self.nodes[i], self.primary_index()
            if "--replicaof" in node.extra_args:
                at = node.extra_args.index("--replicaof")
                del node.extra_args[at : at + 3]
            node.extra_args += ["--replicaof", "127.0.0.1", str(self.proxies[primary].port)]
            node.start()
        self.proxies[i].heal()
        self.wait_healthy()

    def stop(self) -> None:
        for s in self.sentinels:
            s.stop()
        for node in self.nodes:
            if node.proc is not None:
                with contextlib.suppress(OSError):
                    os.kill(node.proc.pid, signal.SIGCONT)
            node.stop()
        for proxy in self.proxies:
            proxy.close()
