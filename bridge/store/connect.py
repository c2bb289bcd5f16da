"""The one way convo-bridge reaches Redis: `REDIS_URL` parsed once, clients made here.

    redis://[user:pw@]host:port/DB          one server (rediss:// with TLS)
    unix://[user:pw@]/path/to/socket?db=DB  one server over a Unix socket
    redis+sentinel://[user:pw@]host:port[,host:port…]/SERVICE[/DB][?sentinel_password=…]
                                            Sentinel: clients ask the sentinels for SERVICE's
                                            primary and ask again after losing it, so a
                                            promoted replica is followed without a restart
    redis+cluster://…                       Redis Cluster: refused for now (the store's
                                            scripts touch keys they build themselves)

`user:pw` are the data servers' credentials; `sentinel_password` (and `sentinel_username`)
the sentinels'. A URL that does not parse is a ConfigError naming REDIS_URL (exit 2), found
when the settings load, before anything starts. RQ_REDIS_URL (RQ's own Redis: its worker
registry, failed jobs, replay jobs and suspension flag) takes the same forms.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.connection import parse_url
from redis.exceptions import RedisError
from redis.sentinel import Sentinel

from bridge.errors import ConfigError, StoreUnavailable

SENTINEL_PORT = 26379
_SENTINEL_QUERY = {"sentinel_password", "sentinel_username"}
SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://")


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where Redis is, as `REDIS_URL` says it."""

    kind: Literal["server", "sentinel"]
    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
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
        raise _bad(
            "redis+cluster:// (Redis Cluster) is not supported yet; use a single server "
            "(redis://) or Sentinel (redis+sentinel://)"
        )
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


def _sentinel(url: str, shown: str) -> RedisAddress:
    split = urlsplit(url)
    auth, _, hosts = split.netloc.rpartition("@")
    if not hosts:
        raise _bad(f"no sentinel host:port in {shown!r}")
    sentinels = []
    for item in hosts.split(","):
        host, sep, port = item.rpartition(":")
        if not sep:
            host, port = item, str(SENTINEL_PORT)
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(f"expected sentinels as host:port,host:port; got {item!r} in {shown!r}")
        sentinels.append((host, int(port)))
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
        sentinels=tuple(sentinels),
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


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A blocking client on `url`'s Redis (the primary, under Sentinel)."""
    address = parse_redis_url(url)
    if address.kind == "server":
        return redis.Redis.from_url(url, **options)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(address.sentinels), sentinel_kwargs=_sentinel_kwargs(address, options)
    )
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        address.service, **_data_kwargs(address, options)
    )
    return client


def async_client(url: str, **options: Any) -> aioredis.Redis:
    """An asyncio client on `url`'s Redis (the primary, under Sentinel)."""
    address = parse_redis_url(url)
    if address.kind == "server":
        return aioredis.Redis.from_url(url, **options)
    sentinel = AsyncSentinel(  # type: ignore[no-untyped-call]
        list(address.sentinels), sentinel_kwargs=_sentinel_kwargs(address, options)
    )
    client: aioredis.Redis = sentinel.master_for(address.service, **_data_kwargs(address, options))
    return client


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
