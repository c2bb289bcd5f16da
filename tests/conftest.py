"""Fixtures that start real servers: a private Redis (AOF, fsync always), the Convocore
sandbox over a socket, the ingest app, and worker engines."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bridge.app import build_app
from bridge.config import Settings, load_settings
from bridge.local.redis_server import RedisServer
from tests.servers import cli, stop
from workers.rq_worker import delivery_worker
from workers.worker import Engine

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendfsync="always")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rq_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A second Redis, for RQ on its own Redis (RQ_REDIS_URL)."""
    server = RedisServer(tmp_path_factory.mktemp("rq-redis"), appendfsync="everysec")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def rq_redis_url(rq_redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(rq_redis_server.url)
    client.flushall()
    client.close()
    return rq_redis_server.url


@pytest.fixture(scope="session")
def ha_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A primary, two replicas and three sentinels (tests/ha.py), started once per run."""
    from tests.ha import HaRedis

    ha = HaRedis(tmp_path_factory.mktemp("ha")).start()
    yield ha
    ha.stop()


@pytest.fixture
def ha(ha_redis: Any) -> Any:
    """The HA set, healthy and empty."""
    for i in range(len(ha_redis.nodes)):
        if ha_redis.nodes[i].proc is None or ha_redis.proxies[i].cut_off:
            ha_redis.restore(i)
    ha_redis.flush()
    return ha_redis


@pytest.fixture(scope="session")
def redis_cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A six-node Redis Cluster (tests/cluster.py: three primaries, one replica each),
    started once per run and only for the tests that ask for it; stopped at the end.

    Valkey 9.1.2 trap: after one cross-slot error inside a script, that node fails every
    later script until restarted; a test that provokes one restarts the node after."""
    from tests.cluster import RedisCluster

    cluster = RedisCluster(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def redis_cluster(redis_cluster_server: Any) -> Any:
    """The cluster healthy (killed nodes back, every primary with a replica) and empty."""
    redis_cluster_server.restore()
    redis_cluster_server.flush()
    return redis_cluster_server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if redis_server.proc is None:  # a test killed it
        redis_server.start()
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def sandbox_url() -> Iterator[str]:
    from bridge.local import sandbox
    from tests.servers import serve_app_in_thread

    with serve_app_in_thread(sandbox.build_app(auto_create=True)) as url:
        yield url


TEST_DELIVERY = {
    "backoff_initial_s": "0.05",
    "backoff_max_s": "0.2",
    "coalesce_ms": "20",
    "lease_s": "3",
    "request_timeout_s": "2",
    "in_doubt_quiet_s": "1",
}


def write_config(tmp_path: Path, extra: str = "") -> Path:
    """The demo source and fast [delivery] settings; `extra` lines (`key = value`, still in
    [delivery]) override them."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "config.toml"
    given = {line.split("=", 1)[0].strip() for line in extra.splitlines() if "=" in line}
    defaults = "".join(f"{k} = {v}\n" for k, v in TEST_DELIVERY.items() if k not in given)
    path.write_text(
        '[sources.demo]\nkind = "standard"\nsecret_env = "DEMO_SECRET"\n'
        "[delivery]\n" + defaults + extra
    )
    return path


@pytest.fixture
def bridge_env(redis_url: str, sandbox_url: str) -> dict[str, str]:
    """The environment every test configuration runs with: the demo source's secret, the
    private Redis, the sandbox as Convocore, and the tokens."""
    return {
        "DEMO_SECRET": SECRET,
        "REDIS_URL": redis_url,
        "CONVOCORE_BASE_URL": sandbox_url,
        "CONVOCORE_API_TOKEN": "test-token",
        "BRIDGE_ADMIN_TOKEN": "admin-token",
    }


@pytest.fixture
def make_settings(tmp_path: Path, bridge_env: dict[str, str]) -> Callable[..., Settings]:
    def make(extra: str = "", env: dict[str, str] | None = None) -> Settings:
        return load_settings(write_config(tmp_path, extra), {**bridge_env, **(env or {})})

    return make


@pytest.fixture
def start_worker_process(
    tmp_path: Path, bridge_env: dict[str, str]
) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """`convo-bridge worker` processes on the same config, Redis and sandbox as `settings`."""
    started: list[subprocess.Popen[bytes]] = []
    here = tmp_path / "worker-processes"
    here.mkdir()

    def start(extra: str = "") -> subprocess.Popen[bytes]:
        """One more worker; `extra`: TOML added to its config."""
        path = write_config(here, extra)
        started.append(cli("--config", str(path), "worker", env=bridge_env))
        return started[-1]

    yield start
    stop(started, 30)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def ingest_url(settings: Settings) -> Iterator[str]:
    from tests.servers import serve_app_in_thread

    with serve_app_in_thread(build_app(settings)) as url:
        yield url


class WorkerThread:
    """A delivery worker (engine and RQ side) in its own thread and event loop, as a worker
    process would run it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker = delivery_worker(settings)
        self.engine: Engine | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()

    def _run(self) -> None:
        async def main() -> None:
            self.loop = asyncio.get_running_loop()
            run = asyncio.create_task(
                self.worker.run_async(self.settings, burst=False, signals=False)
            )
            await asyncio.sleep(0)
            self.engine = self.worker.engine
            self.ready.set()
            await run

        asyncio.run(main())

    def start(self) -> WorkerThread:
        self.thread.start()
        self.ready.wait(10)
        return self

    def stop(self) -> None:
        """Stops it (cancelled, with a warning, past 30 s), or fails the test that started it:
        a worker left running re-registers in the shared Redis after every flush and is
        counted by later tests (seen once in CI: two RQ-registry tests failed on another
        test's worker)."""
        self.ready.wait(30)  # one still starting is stopped too, not skipped
        loop = self.loop
        if loop is not None and self.thread.is_alive():
            loop.call_soon_threadsafe(self.worker.stop)
        self.thread.join(30)
        if loop is not None and self.thread.is_alive():

            def cancel_all() -> None:
                for task in asyncio.all_tasks(loop):
                    task.cancel()

            loop.call_soon_threadsafe(cancel_all)
            self.thread.join(10)
            if self.thread.is_alive():
                raise AssertionError("a worker thread did not stop, even cancelled")
            warnings.warn("a worker thread did not stop within 30 s: cancelled", stacklevel=2)


@pytest.fixture
def start_worker(settings: Settings) -> Iterator[Callable[..., WorkerThread]]:
    started: list[WorkerThread] = []

    def start(custom: Settings | None = None) -> WorkerThread:
        w = WorkerThread(custom or settings).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0, every_s: float = 0.02) -> Any:
    import time

    deadline = time.time() + timeout_s
    last: Any = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"condition not met within {timeout_s} s (last: {last!r})")


def convo(sandbox_url: str, agent: str, convo_id: str) -> dict[str, Any] | None:
    answer = httpx.get(f"{sandbox_url}/agents/{agent}/convos/{convo_id}")
    return answer.json()["data"] if answer.status_code == 200 else None
