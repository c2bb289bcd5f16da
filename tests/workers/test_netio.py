"""The asyncio network backend under httpx: keep-alive, idle connections the server closed,
TLS, timeouts and refused connections, against real servers over sockets."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port, serve_app_in_thread
from workers.netio import AsyncioTransport

LIMITS = httpx.Limits(max_connections=2, max_keepalive_connections=2)


async def echo_peer(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers every request with the client's port (which connection it came on)."""
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    body = str(scope["client"][1]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
def peer_url() -> Iterator[str]:
    with serve_app_in_thread(echo_peer, timeout_keep_alive=1, lifespan="off") as url:
        yield url


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def client(base_url: str, **options: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, transport=AsyncioTransport(limits=LIMITS, **options), timeout=5
    )


def test_sequential_requests_reuse_one_keep_alive_connection(peer_url: str) -> None:
    async def main() -> set[str]:
        async with client(peer_url) as c:
            return {(await c.patch("/x", content=b"{}")).text for _ in range(20)}

    assert len(run(main())) == 1


def test_a_connection_the_server_closed_while_idle_is_replaced_not_failed(peer_url: str) -> None:
    async def main() -> tuple[str, str]:
        async with client(peer_url) as c:
            first = (await c.get("/x")).text
            await asyncio.sleep(2.0)  # the server's keep-alive timeout (1 s) closes it
            second = await c.get("/x")
            assert second.status_code == 200
            return first, second.text

    first, second = run(main())
    assert first != second


def test_read_timeout_is_httpx_read_timeout(peer_url: str) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(
            base_url=peer_url, transport=AsyncioTransport(limits=LIMITS), timeout=0.2
        ) as c:
            await c.get("/slow")

    with pytest.raises(httpx.ReadTimeout):
        run(main())


def test_refused_connection_is_httpx_connect_error() -> None:
    async def main() -> None:
        async with client(f"http://127.0.0.1:{free_port()}") as c:
            await c.get("/x")

    with pytest.raises(httpx.ConnectError):
        run(main())


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def test_tls_with_a_trusted_certificate_works(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    trusted = ssl.create_default_context(cafile=str(cert))
    with serve_app_in_thread(
        echo_peer, ssl_certfile=str(cert), ssl_keyfile=str(key), lifespan="off"
    ) as url:
        https = url.replace("http://", "https://")

        async def main() -> list[int]:
            async with client(https, verify=trusted) as c:
                return [(await c.get("/x")).status_code for _ in range(3)]

        assert run(main()) == [200, 200, 200]


def test_tls_with_an_untrusted_certificate_is_refused(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    with serve_app_in_thread(
        echo_peer, ssl_certfile=str(cert), ssl_keyfile=str(key), lifespan="off"
    ) as url:

        async def main() -> None:
            async with client(url.replace("http://", "https://")) as c:
                await c.get("/x")

        with pytest.raises(httpx.ConnectError):
            run(main())


def test_a_dead_first_address_does_not_use_up_the_connect_timeout(peer_url: str) -> None:
    """A host whose first address blackholes (10.255.255.1 answers nothing) and whose second
    works: the connection is made well within the timeout, on the second address."""
    import socket

    port = int(peer_url.rsplit(":", 1)[1])

    async def main() -> int:
        loop = asyncio.get_running_loop()

        async def two_addresses(host: str, port: int, **kw: Any) -> list[Any]:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.255.255.1", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]

        loop.getaddrinfo = two_addresses  # type: ignore[method-assign,assignment]
        async with httpx.AsyncClient(
            base_url=f"http://bridge-test.invalid:{port}",
            transport=AsyncioTransport(limits=LIMITS),
            timeout=httpx.Timeout(5.0, connect=3.0),
        ) as c:
            return (await c.get("/x")).status_code

    started = time.monotonic()
    assert run(main()) == 200
    assert time.monotonic() - started < 2.5  # its share (1.5 s), not the whole 3 s
