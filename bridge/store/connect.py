"""The one way convo-bridge reaches Redis: `REDIS_URL` parsed once, clients made here.

    redis://[user:pw@]host:port/DB          one server (rediss:// with TLS)
    unix://[user:pw@]/path/to/socket?db=DB  one server over a Unix socket
    redis+sentinel://[user:pw@]host:port[,host:port…]/SERVICE[/DB][?sentinel_password=…]
                                            Sentinel: clients ask the sentinels for SERVICE's
                                            primary and ask again after losing it, so a
                                            promoted replica is followed without a restart
    redis+cluster://[user:pw@]host:port[,host:port…][/0]
                                            Redis Cluster: the hosts are startup nodes (the
                                            client learns the rest and follows failovers);
                                            database 0 only. Each shard of the store's keys
                                            is one hash slot there (cluster_nodes), and RQ
                                            needs a Redis of its own: RQ_REDIS_URL, a single
                                            server or Sentinel (require_store_support)

`user:pw` are the data servers' credentials; `sentinel_password` (and `sentinel_username`)
the sentinels'. A URL that does not parse is a ConfigError naming REDIS_URL (exit 2), found
when the settings load, before anything starts. RQ_REDIS_URL (RQ's own Redis: its worker
registry, failed jobs, replay jobs and suspension flag) takes the same forms.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.connection import parse_url
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

from bridge.errors import ConfigError, StoreUnavailable

if TYPE_CHECKING:
    from bridge.store.cluster_map import ClusterNodes

SENTINEL_PORT = 26379
CLUSTER_PORT = 6379
_SENTINEL_QUERY = {"sentinel_password", "sentinel_username"}
SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where Redis is, as `REDIS_URL` says it."""

    kind: Literal["server", "sentinel", "cluster"]
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    nodes: tuple[tuple[str, int], ...] = ()  # Cluster: the startup nodes
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def redacted(self) -> str:
        return redact(self.url)


def parse_redis_url(url: str, variable: str = "REDIS_URL") -> RedisAddress:
    """`url` checked and split; raises ConfigError(`variable`, …) saying what is wrong."""
    try:
        return _parse(url)
    except ConfigError as exc:
        if variable == exc.key:
            raise
        raise ConfigError(variable, exc.problem) from None


def _bad(problem: str) -> ConfigError:
    return ConfigError("REDIS_URL", problem)


def _parse(url: str) -> RedisAddress:
    shown = redact(url)
    if not url.startswith(SCHEMES):
        return _fail(f"expected a URL starting with one of {', '.join(SCHEMES)}; got {shown!r}")
    if url.startswith("redis+cluster://"):
        return _cluster(url, shown)
    if url.startswith("redis+sentinel://"):
        return _sentinel(url, shown)
    try:
        parts = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise _bad(f"{exc} ({shown!r})") from None
    split = urlsplit(url)
    if url.startswith("unix://"):
        if not parts.get("path"):
            raise _bad(
                f"a unix:// URL needs the socket's path, e.g. unix:///run/redis.sock ({shown!r})"
            )
    else:
        if not parts.get("host"):
            raise _bad(f"no host in {shown!r}; expected e.g. redis://redis:6379/0")
        db = split.path.strip("/")
        if db and not db.isdigit():
            raise _bad(f"the path is the database number, got {db!r} ({shown!r})")
    return RedisAddress(
        "server",
        url,
        db=int(parts.get("db", 0)),
        username=parts.get("username"),
        password=parts.get("password"),
    )


def _fail(problem: str) -> RedisAddress:
    raise _bad(problem)


def _hosts(hosts: str, default_port: int, what: str, shown: str) -> tuple[tuple[str, int], ...]:
    found = []
    for item in hosts.split(","):
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, str(default_port)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(f"expected {what} as host:port,host:port; got {item!r} in {shown!r}")
        found.append((host, int(port)))
    return tuple(found)


def _cluster(url: str, shown: str) -> RedisAddress:
    try:
        split = urlsplit(url)
    except ValueError as exc:
        raise _bad(f"{exc} ({shown!r})") from None
    auth, _, hosts = split.netloc.rpartition("@")
    if not hosts:
        raise _bad(
            f"no startup node host:port in {shown!r}; expected e.g. redis+cluster://c1:6379,c2:6379"
        )
    nodes = _hosts(hosts, CLUSTER_PORT, "startup nodes", shown)
    db = split.path.strip("/")
    if db and db != "0":
        raise _bad(f"Redis Cluster has only database 0; got {db!r} in {shown!r}")
    if split.query or split.fragment:
        raise _bad(f"a redis+cluster:// URL takes no options; got {shown!r}")
    user, _, password = auth.partition(":")
    return RedisAddress(
        "cluster",
        url,
        nodes=nodes,
        username=unquote(user) or None,
        password=unquote(password) or None,
    )


def require_store_support(url: str, variable: str = "REDIS_URL", rq_url: str = "") -> None:
    """ConfigError(`variable`) for a setup the store (and so serve, worker and the commands
    that read the queue) cannot run on: Redis Cluster without RQ_REDIS_URL (RQ 3 does not
    run on Cluster: rq issues 1048 and 1942), or RQ_REDIS_URL itself on Cluster."""
    kind = parse_redis_url(url, variable).kind
    if kind == "cluster" and variable == "RQ_REDIS_URL":
        raise ConfigError(
            variable,
            f"RQ does not run on Redis Cluster (rq issues 1048, 1942); give RQ a single "
            f"server (redis://) or Sentinel (redis+sentinel://); got {redact(url)!r}",
        )
    if rq_url and rq_url != url:
        require_store_support(rq_url, "RQ_REDIS_URL")
    elif kind == "cluster":
        raise ConfigError(
            "RQ_REDIS_URL",
            f"REDIS_URL is Redis Cluster ({redact(url)!r}): set RQ_REDIS_URL to a Redis for "
            "RQ's worker registry, failed jobs and replay jobs (a single server or Sentinel; "
            "RQ does not run on Cluster)",
        )


def _sentinel(url: str, shown: str) -> RedisAddress:
    split = urlsplit(url)
    auth, _, hosts = split.netloc.rpartition("@")
    if not hosts:
        raise _bad(f"no sentinel host:port in {shown!r}")
    sentinels = _hosts(hosts, SENTINEL_PORT, "sentinels", shown)
    path = [p for p in split.path.split("/") if p]
    if not path or len(path) > 2:
        raise _bad(f"expected /SERVICE or /SERVICE/DB after the sentinels in {shown!r}")
    if len(path) == 2 and not path[1].isdigit():
        raise _bad(f"the database is a number, got {path[1]!r} in {shown!r}")
    query = parse_qs(split.query, keep_blank_values=True)
    for name in query:
        if name not in _SENTINEL_QUERY:
            raise _bad(
                f"unknown option {name!r} in {shown!r}; known: {', '.join(sorted(_SENTINEL_QUERY))}"
            )
    user, _, password = auth.partition(":")
    return RedisAddress(
        "sentinel",
        url,
        sentinels=sentinels,
        service=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(user) or None,
        password=unquote(password) or None,
        sentinel_username=query.get("sentinel_username", [""])[0] or None,
        sentinel_password=query.get("sentinel_password", [""])[0] or None,
    )


def _sentinel_kwargs(address: RedisAddress, options: dict[str, Any]) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "socket_connect_timeout": options.get("socket_connect_timeout") or 2.0,
        "socket_timeout": 2.0,
    }
    if address.sentinel_password:
        kwargs["password"] = address.sentinel_password
    if address.sentinel_username:
        kwargs["username"] = address.sentinel_username
    return kwargs


def _data_kwargs(address: RedisAddress, options: dict[str, Any]) -> dict[str, Any]:
    return {
        "db": address.db,
        "username": address.username,
        "password": address.password,
        **options,
    }


def _cluster_kwargs(
    address: RedisAddress, options: dict[str, Any], accepted: Any
) -> dict[str, Any]:
    """The client options a cluster client takes: redis-py's asyncio RedisCluster has no
    `retry_on_timeout` (it retries on its own) and refuses unknown keywords."""
    params = inspect.signature(accepted).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
    kept = {k: v for k, v in options.items() if takes_any or k in params}
    return {"username": address.username, "password": address.password, **kept}


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A blocking client on `url`'s Redis (the primary, under Sentinel; under Cluster a
    redis.cluster.RedisCluster, which has redis.Redis's commands)."""
    address = parse_redis_url(url)
    if address.kind == "server":
        return redis.Redis.from_url(url, **options)
    if address.kind == "cluster":
        cluster: Any = redis.cluster.RedisCluster(
            startup_nodes=[
                redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call]
                for h, p in address.nodes
            ],
            **_cluster_kwargs(address, options, redis.cluster.RedisCluster.__init__),
        )
        return cast(redis.Redis, cluster)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(address.sentinels), sentinel_kwargs=_sentinel_kwargs(address, options)
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        address.service, **_data_kwargs(address, options)
    )
    return client


def async_client(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client on `url`'s Redis (the primary, under Sentinel; under Cluster a
    redis.asyncio.cluster.RedisCluster)."""
    address = parse_redis_url(url)
    if address.kind == "server":
        return aioredis.Redis.from_url(url, **options)
    if address.kind == "cluster":
        cluster: Any = aiocluster.RedisCluster(
            startup_nodes=[aiocluster.ClusterNode(h, p) for h, p in address.nodes],
            **_cluster_kwargs(address, options, aiocluster.RedisCluster.__init__),
        )
        return cast(aioredis.Redis, cluster)
    sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
        list(address.sentinels), sentinel_kwargs=_sentinel_kwargs(address, options)
    )
    client: aioredis.Redis = sentinel.master_for(address.service, **_data_kwargs(address, options))
    return client


def cluster_nodes(url: str, **options: Any) -> ClusterNodes:
    """The store's clients on Redis Cluster: a plain pair per primary, each shard's calls
    sent to the primary owning its slot (bridge/store/cluster_map.py)."""
    from bridge.store.cluster_map import ClusterNodes

    address = parse_redis_url(url)
    auth: dict[str, Any] = {"username": address.username, "password": address.password}
    kept = {k: v for k, v in options.items() if k != "retry_on_timeout"}  # deprecated there
    return ClusterNodes(address.nodes, auth, **kept)


def sync_store_client(url: str, key: str, **options: Any) -> redis.Redis:
    """`sync_client(url)`, except on Redis Cluster: a plain client on the primary that owns
    `key`'s slot now (asked once: for a short job, which fails and is retried when the
    primary moves)."""
    address = parse_redis_url(url)
    if address.kind != "cluster":
        return sync_client(url, **options)
    from redis.crc import key_slot

    from bridge.store.cluster_map import primary_sync

    auth: dict[str, Any] = {"username": address.username, "password": address.password}
    host, port = primary_sync(address.nodes, key_slot(key.encode()), auth)
    return redis.Redis(host=host, port=port, **auth, **options)


class Redis(redis.Redis):
    """For RQ's command line: `rq … --connection-class bridge.store.connect.Redis -u URL`
    then takes every URL REDIS_URL takes, Sentinel included."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Any:
        if url.startswith("redis+"):
            return sync_client(url, **kwargs)
        return super().from_url(url, **kwargs)


@contextlib.contextmanager
def store_errors(url: str) -> Iterator[None]:
    """Redis's own errors (and socket errors) inside the block, as StoreUnavailable naming
    the server without its password: callers answer 503 or retry, never a traceback. The
    one place they are mapped; it works around `await`s too."""
    try:
        yield
    except (RedisError, OSError) as exc:
        raise StoreUnavailable(f"Redis at {redact(url)}: {type(exc).__name__}") from exc


def redact(url: str) -> str:
    """A Redis URL without its passwords, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if "@" in url else url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    if "password=" in tail:
        head, _, query = tail.partition("?")
        pairs = [
            f"{k}=***" if "password" in k else f"{k}={v}"
            for k, _, v in (p.partition("=") for p in query.split("&"))
        ]
        tail = head + "?" + "&".join(pairs)
    return f"{scheme}://{netloc}{slash}{tail}"
