"""An asyncio-native network backend for httpx's connection pool.

httpx runs its pool on httpcore, which reaches asyncio through anyio: cancel scopes, task
lookups and an attribute table rebuilt for every readiness check. Profiling the worker at
2,000 PATCHes/s put a fifth of its CPU there. This backend talks to asyncio streams
directly and keeps everything else of httpx (h11, pooling, keep-alive, TLS, timeouts and
the mapping of errors onto httpx's exceptions).

`AsyncioTransport` is httpx's own `AsyncHTTPTransport` with this backend under its pool.
httpx has no public parameter for the backend, so the pool is rebuilt with the transport's
own settings; pyproject pins httpx below 0.29 for that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore import (
    AsyncNetworkBackend,
    AsyncNetworkStream,
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)

READ_LIMIT = 2**16
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)  # as httpcore declares it


class AsyncioStream(AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError:
            raise ReadTimeout("read timed out") from None
        except OSError as exc:
            raise ReadError(str(exc)) from None

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError:
            raise WriteTimeout("write timed out") from None
        except OSError as exc:
            raise WriteError(str(exc)) from None

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, asyncio.TimeoutError, ssl.SSLError):
            async with asyncio.timeout(1):
                await self._writer.wait_closed()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            await self.aclose()
            raise ConnectTimeout("TLS handshake timed out") from None
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise ConnectError(str(exc)) from None
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # True when the server sent something or hung up while the connection sat idle:
            # the pool then drops it instead of reusing it
            return (
                self._writer.transport.is_closing()
                or self._reader.at_eof()
                or self._reader.exception() is not None
                or bool(getattr(self._reader, "_buffer", b""))
            )
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        return None


async def _open(
    host: str, port: int, local_address: str | None, timeout: float | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP to the first address of `host` that answers. A dead first address (say, a broken
    IPv6 route) must not use up the whole connect timeout: each address gets its share of
    it (uvloop's create_connection has no happy_eyeballs_delay to do this for us)."""
    loop = asyncio.get_running_loop()
    local = (local_address, 0) if local_address else None
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(addr[0]) for _, _, _, _, addr in infos))
    if len(addresses) <= 1:
        return await asyncio.open_connection(host, port, local_addr=local, limit=READ_LIMIT)
    share = None if timeout is None else max(timeout / len(addresses), 1.0)
    last: OSError | TimeoutError = OSError(f"no address for {host}")
    for address in addresses:
        try:
            async with asyncio.timeout(share):
                return await asyncio.open_connection(
                    address, port, local_addr=local, limit=READ_LIMIT
                )
        except (OSError, TimeoutError) as exc:
            last = exc
    raise last


class AsyncioBackend(AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await _open(host, port, local_address, timeout)
        except TimeoutError:
            raise ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise ConnectError(str(exc)) from None
        sock: socket.socket | None = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for option in socket_options or ():
                sock.setsockopt(*option)
        return AsyncioStream(reader, writer)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path, limit=READ_LIMIT)
        except TimeoutError:
            raise ConnectTimeout(f"connecting to {path} timed out") from None
        except OSError as exc:
            raise ConnectError(str(exc)) from None
        return AsyncioStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class AsyncioTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, pooled over `AsyncioBackend`. It connects directly: a client given
    this transport ignores proxy variables, so `workers/convocore.py` uses httpx's default
    transport when HTTP(S)_PROXY applies to the target."""

    def __init__(self, *, limits: httpx.Limits, verify: bool | ssl.SSLContext = True) -> None:
        super().__init__(limits=limits, verify=verify)
        old = self._pool
        assert isinstance(old, httpcore.AsyncConnectionPool)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=old._ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=AsyncioBackend(),
        )
