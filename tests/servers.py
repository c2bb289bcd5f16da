"""Real servers for tests and benchmarks: an ASGI app over a socket from a background
thread, and `convo-bridge` commands as child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # uvicorn >= 0.29 uses this instead
        yield


@contextlib.contextmanager
def serve_app_in_thread(app: Any, **options: Any) -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        **{"lifespan": "on", **options},
    )
    server = _Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def ready(url: str, path: str = "/readyz") -> bool:
    """Whether a server started as a separate process answers 200 yet."""
    import httpx

    try:
        return httpx.get(url + path, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def spawn(args: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A child process with its output discarded, in this environment plus `env`."""
    return subprocess.Popen(
        args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def cli(*args: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """`convo-bridge ARGS` as a child process."""
    return spawn([sys.executable, "-m", "bridge.cli", *args], env)


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout_s: float = 20) -> None:
    """SIGTERM to every process still running, then wait; kill what does not stop."""
    procs = list(procs)
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def status_json(env: Mapping[str, str]) -> Any:
    """`convo-bridge status --json` with `env`, its answer parsed (exit 0 asserted)."""
    import json

    out = subprocess.run(
        [sys.executable, "-m", "bridge.cli", "status", "--json"],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def rq(*args: str, url: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    """RQ's own command line (`rq ARGS -u URL`), run to completion."""
    return subprocess.run(
        [sys.executable, "-m", "rq.cli", *args, "-u", url],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "NO_COLOR": "1"},
    )


def logged(args: list[str], env: Mapping[str, str], log: Any) -> subprocess.Popen[bytes]:
    """A child process with its output appended to the file at `log`."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            args, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT
        )


def rq_worker(*args: str, url: str, env: Mapping[str, str], log: Any) -> subprocess.Popen[bytes]:
    """`rq worker ARGS -u URL` as a child process, its output into the file `log`."""
    return logged([sys.executable, "-m", "rq.cli", "worker", *args, "-u", url], env, log)


def cli_logged(*args: str, env: Mapping[str, str], log: Any) -> subprocess.Popen[bytes]:
    """`convo-bridge ARGS` as a child process, its output into the file `log`."""
    return logged([sys.executable, "-m", "bridge.cli", *args], env, log)


def rq_workers(url: str) -> list[Any]:
    """The workers RQ's registry lists on the convo-bridge queue (what `rq info` shows)."""
    import redis
    from rq import Queue, Worker

    from bridge.store.keys import RQ_QUEUE

    conn = redis.Redis.from_url(url)
    try:
        return list(Worker.all(queue=Queue(RQ_QUEUE, connection=conn)))
    finally:
        conn.close()


class TricklingTarget:
    """A Convocore stand-in over a raw socket: a PATCH whose path contains `slow` is answered
    one byte every `every_s` (for at most `limit_s`, then the rest at once), so no single
    read ever waits long; every other request is answered at once. Each request is recorded
    with when it arrived and when its connection ended or its answer was complete."""

    ANSWER = b'{"success": true, "data": {}}'

    def __init__(self, every_s: float = 0.5, limit_s: float = 10.0) -> None:
        self.every_s = every_s
        self.limit_s = limit_s
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> TricklingTarget:
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self._server = server
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            self._server.close()
            handlers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def paths(self, method: str = "PATCH") -> list[str]:
        return [r["path"] for r in list(self.requests) if r["method"] == method]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                length = next(
                    (int(v) for k, _, v in (x.partition(":") for x in lines[1:])
                     if k.strip().lower() == "content-length"),
                    0,
                )  # fmt: skip
                await reader.readexactly(length)
                record = {"method": method, "path": path, "at": time.monotonic(), "ended": None}
                self.requests.append(record)
                answer = (
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    + f"content-length: {len(self.ANSWER)}\r\n\r\n".encode()
                    + self.ANSWER
                )
                if method == "PATCH" and "slow" in path:
                    sent = 0
                    while sent < len(answer) and time.monotonic() - record["at"] < self.limit_s:
                        writer.write(answer[sent : sent + 1])
                        sent += 1
                        await asyncio.sleep(self.every_s)
                        if reader.at_eof() or writer.transport.is_closing():
                            record["ended"], record["complete"] = time.monotonic(), False
                            return
                    answer = answer[sent:]
                writer.write(answer)
                await writer.drain()
                record["ended"], record["complete"] = time.monotonic(), True
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            return  # the client left, or the target is closing (not a cancelled task: quiet)
        finally:
            writer.close()


class StallingProxy:
    """A TCP proxy (threads) in front of a server; `stall()` makes it a half-open peer: every
    connection, old and new, stays open and nothing more is forwarded either way, as when a
    Redis host hangs or a network path silently drops packets."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.stalled = threading.Event()
        self.closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> StallingProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self._listener.close()
        for s in list(self._sockets):
            with contextlib.suppress(OSError):
                s.close()

    def stall(self) -> None:
        self.stalled.set()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            if self.stalled.is_set():
                continue  # accepted, never answered
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                client.close()
                continue
            self._sockets.append(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.1)
        while not self.closed.is_set():
            if self.stalled.is_set():
                time.sleep(0.1)
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                return
            if self.stalled.is_set():
                return  # read while stalling: dropped, like the lost packets
            try:
                dst.sendall(data)
            except OSError:
                return


def keys_but_the_log(client: Any, pattern: str = "*") -> list[bytes]:
    """The keys matching `pattern` but the event log and its per-minute chart counts, which
    record refused requests too: what a refused request must leave untouched."""
    return [k for k in client.keys(pattern) if k != b"cb:events" and not k.startswith(b"cb:m:")]
