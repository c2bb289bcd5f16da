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


def keys_but_the_log(client: Any, pattern: str = "*") -> list[bytes]:
    """The keys matching `pattern` but the event log and its per-minute chart counts, which
    record refused requests too: what a refused request must leave untouched."""
    return [k for k in client.keys(pattern) if k != b"cb:events" and not k.startswith(b"cb:m:")]
