"""The worker's HTTP/1.1 transport (workers/http1.py), against real servers over sockets:
uvicorn for keep-alive, TLS and timeouts, and a scripted raw server for how answers are
framed (length, chunks, the connection's end), informational answers, broken or oversized
answers and the connection's reuse after each."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import workers.http1
from tests.servers import free_port, serve_app_in_thread
from workers.http1 import Http1Transport


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
    return httpx.AsyncClient(base_url=base_url, transport=Http1Transport(**options), timeout=5)


class RawTarget:
    """A TCP server in a thread: for each request (head and Content-Length body) read on a
    connection, `answer(n)` (n: the server's count of requests so far) gives the bytes to write and whether to close the
    connection after them (None: close without writing). It counts connections."""

    def __init__(self, answer: Callable[[int], tuple[bytes, bool] | None]) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0)
        )
        self.url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.requests += 1
                reply = self.answer(self.requests)
                if reply is None:
                    break
                data, close = reply
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    def __enter__(self) -> RawTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.server.close()
        self.loop.run_until_complete(self.server.wait_closed())
        self.loop.close()


def ok(body: bytes = b"ok", *headers: bytes) -> bytes:
    head = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), head, body)


def texts(url: str, count: int, path: str = "/x") -> list[str]:
    async def main() -> list[str]:
        async with client(url) as c:
            return [(await c.patch(path, content=b"{}")).text for _ in range(count)]

    result: list[str] = run(main())
    return result


def test_sequential_requests_reuse_one_keep_alive_connection(peer_url: str) -> None:
    assert len(set(texts(peer_url, 20))) == 1


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


def test_a_connection_idle_past_the_keep_alive_expiry_is_not_reused(
    peer_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that keeps idle connections longer than the client would race it: the
    client stops reusing one after 5 s (here 0.2 s) idle, before the server may close it."""
    monkeypatch.setattr(workers.http1, "KEEPALIVE_EXPIRY_S", 0.2)

    async def main() -> list[str]:
        async with client(peer_url) as c:
            first = (await c.get("/x")).text
            second = (await c.get("/x")).text
            await asyncio.sleep(0.5)
            return [first, second, (await c.get("/x")).text]

    first, second, third = run(main())
    assert first == second != third


def test_read_timeout_is_httpx_read_timeout(peer_url: str) -> None:
    async def main() -> None:
        async with httpx.AsyncClient(
            base_url=peer_url, transport=Http1Transport(), timeout=0.2
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


def test_a_chunked_and_gzipped_answer_is_read_whole_and_decoded() -> None:
    packed = gzip.compress(b'{"success": true, "data": {"id": "c1"}}')
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(packed[i : i + 7]), packed[i : i + 7])
                      for i in range(0, len(packed), 7))  # fmt: skip
    answer = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-encoding: gzip\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    with RawTarget(lambda n: (answer, False)) as target:
        assert texts(target.url, 3) == ['{"success": true, "data": {"id": "c1"}}'] * 3
        assert target.connections == 1


def test_an_answer_without_a_length_ends_with_the_connection_which_is_then_replaced() -> None:
    with RawTarget(lambda n: (b"HTTP/1.1 200 OK\r\n\r\nuntil-close-%d" % n, True)) as target:
        assert texts(target.url, 2) == ["until-close-1", "until-close-2"]
        assert target.connections == 2


def test_connection_close_in_an_answer_means_the_next_request_opens_another() -> None:
    with RawTarget(lambda n: (ok(b"n%d" % n, b"connection: close"), True)) as target:
        assert texts(target.url, 3) == ["n1", "n2", "n3"]
        assert target.connections == 3


def test_an_informational_answer_before_the_answer_is_passed_over() -> None:
    answer = b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"after-continue")
    with RawTarget(lambda n: (answer, False)) as target:
        assert texts(target.url, 2) == ["after-continue"] * 2
        assert target.connections == 1


def test_a_server_closing_without_answering_is_a_protocol_error() -> None:
    with RawTarget(lambda n: None) as target, pytest.raises(httpx.RemoteProtocolError) as err:
        texts(target.url, 1)
    assert "without answering" in str(err.value)


def test_an_answer_cut_off_mid_body_is_a_protocol_error_and_not_reused() -> None:
    cut = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly-part"
    with RawTarget(lambda n: (cut, True) if n == 1 else (ok(b"fine"), False)) as target:

        async def main() -> str:
            async with client(target.url) as c:
                with pytest.raises(httpx.RemoteProtocolError, match="mid-answer"):
                    await c.patch("/x", content=b"{}")
                return (await c.patch("/x", content=b"{}")).text

        assert run(main()) == "fine"
        assert target.connections == 2


def test_something_that_is_not_http_is_a_protocol_error() -> None:
    with (
        RawTarget(lambda n: (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", False)) as target,
        pytest.raises(httpx.RemoteProtocolError, match=r"not an HTTP/1\.1 answer"),
    ):
        texts(target.url, 1)


def test_bytes_sent_after_the_answer_unasked_mean_the_connection_is_not_reused() -> None:
    with RawTarget(lambda n: (ok(b"a%d" % n) + ok(b"unasked"), False)) as target:
        assert texts(target.url, 2) == ["a1", "a2"]
        assert target.connections == 2


def test_an_answer_larger_than_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.http1, "MAX_ANSWER_BYTES", 1000)
    with (
        RawTarget(lambda n: (ok(b"x" * 5000), False)) as target,
        pytest.raises(httpx.RemoteProtocolError, match="larger than 1000 bytes"),
    ):
        texts(target.url, 1)


def test_a_request_cancelled_mid_answer_closes_its_connection() -> None:
    """The deadline (workers/convocore.py) cancels a request mid-answer: the half-read
    connection must never carry the next request."""
    slow = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf"

    with RawTarget(lambda n: (slow, False) if n == 1 else (ok(b"clean"), False)) as target:

        async def main() -> str:
            async with client(target.url) as c:
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.3):
                        await c.patch("/x", content=b"{}")
                return (await c.patch("/x", content=b"{}")).text

        assert run(main()) == "clean"
        assert target.connections == 2


def test_the_request_is_sent_as_httpx_built_it() -> None:
    """Method, the path and query as given, Host with its port, the body and its length."""
    seen: list[bytes] = []
    loop = asyncio.new_event_loop()

    async def capture(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head + await reader.readexactly(7))
        writer.write(ok())
        await writer.drain()
        writer.close()

    server = loop.run_until_complete(asyncio.start_server(capture, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:

        async def main() -> None:
            async with client(f"http://127.0.0.1:{port}") as c:
                await c.patch("/agents/a%2Fb/convos/c?x=1", content=b'{"a":1}')

        run(main())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.close()
    lines = seen[0].split(b"\r\n")
    assert lines[0] == b"PATCH /agents/a%2Fb/convos/c?x=1 HTTP/1.1"
    assert f"host: 127.0.0.1:{port}".encode() in [line.lower() for line in lines]
    assert b"content-length: 7" in [line.lower() for line in lines]
    assert seen[0].endswith(b'\r\n\r\n{"a":1}')


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


def test_tls_with_a_trusted_certificate_works_and_keeps_its_connection(
    tls_files: tuple[Path, Path],
) -> None:
    cert, key = tls_files
    trusted = ssl.create_default_context(cafile=str(cert))
    with serve_app_in_thread(
        echo_peer, ssl_certfile=str(cert), ssl_keyfile=str(key), lifespan="off"
    ) as url:
        https = url.replace("http://", "https://")

        async def main() -> list[httpx.Response]:
            async with client(https, verify=trusted) as c:
                return [await c.get("/x") for _ in range(3)]

        answers = run(main())
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert len({a.text for a in answers}) == 1


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
            transport=Http1Transport(),
            timeout=httpx.Timeout(5.0, connect=3.0),
        ) as c:
            return (await c.get("/x")).status_code

    started = time.monotonic()
    assert run(main()) == 200
    assert time.monotonic() - started < 2.5  # its share (1.5 s), not the whole 3 s


def test_a_switching_protocols_answer_is_a_protocol_error() -> None:
    answer = (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"
    )
    with (
        RawTarget(lambda n: (answer, False)) as target,
        pytest.raises(httpx.RemoteProtocolError, match=r"not an HTTP/1\.1 answer"),
    ):
        texts(target.url, 1)


def test_chunked_trailers_are_not_taken_for_headers() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: content-encoding\r\n\r\n"
        b"2\r\nok\r\n0\r\ncontent-encoding: gzip\r\n\r\n"
    )
    with RawTarget(lambda n: (answer, False)) as target:
        assert texts(target.url, 2) == ["ok", "ok"]


def test_answers_with_bare_line_feeds_are_read_as_httpx_would() -> None:
    with RawTarget(lambda n: (b"HTTP/1.1 200 OK\ncontent-length: 2\n\nok", False)) as target:
        assert texts(target.url, 1) == ["ok"]


def test_a_whole_answer_followed_by_junk_before_the_close_is_the_answer() -> None:
    answer = ok(b"done", b"connection: close") + b"junk after the answer"
    with RawTarget(lambda n: (answer, True)) as target:
        assert texts(target.url, 2) == ["done", "done"]
        assert target.connections == 2


def test_an_answer_head_larger_than_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers.http1, "MAX_HEAD_BYTES", 1000)
    endless = b"HTTP/1.1 200 OK\r\nx-padding: " + b"y" * 5000
    with (
        RawTarget(lambda n: (endless, False)) as target,
        pytest.raises(httpx.RemoteProtocolError, match="head larger than 1000 bytes"),
    ):
        texts(target.url, 1)


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent() -> None:
    """A token read from a file with its trailing newline must not end the head early."""
    with RawTarget(lambda n: (ok(), False)) as target:

        async def main() -> None:
            async with client(target.url) as c:
                await c.patch("/x", content=b"{}", headers={"authorization": "Bearer t\n"})

        with pytest.raises(httpx.LocalProtocolError, match="'authorization' has a line break"):
            run(main())
        assert target.requests == 0


def test_a_streamed_request_body_goes_with_its_length() -> None:
    async def chunks() -> Any:
        yield b'{"a":'
        yield b"1}"

    with RawTarget(lambda n: (ok(b"got it"), False)) as target:

        async def main() -> str:
            async with client(target.url) as c:
                return (await c.patch("/x", content=chunks())).text

        assert run(main()) == "got it"  # the server read a Content-Length body
        assert target.requests == 1


def test_a_connection_in_use_when_the_transport_closes_is_closed_after_it() -> None:
    slow_then_ok = RawTarget(lambda n: (ok(b"late"), False))
    with slow_then_ok as target:

        async def main() -> bool:
            transport = Http1Transport()
            request = httpx.Request("GET", target.url + "/x")
            running = asyncio.create_task(transport.handle_async_request(request))
            await asyncio.sleep(0)  # the request has started: no connection kept yet
            await transport.aclose()
            await running
            return transport._conn is None

        assert run(main())


def test_an_international_host_name_is_looked_up_as_the_host_header_spells_it() -> None:
    asked: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def record(host: str, port: int, **kw: Any) -> list[Any]:
            asked.append(host)
            raise OSError("no such host (test)")

        loop.getaddrinfo = record  # type: ignore[method-assign,assignment]
        async with client("http://faß.example") as c:
            await c.get("/x")

    with pytest.raises(httpx.ConnectError):
        run(main())
    assert asked == ["xn--fa-hia.example"]  # IDNA 2008, not Python's IDNA 2003 "fass"


def test_chunks_win_over_a_content_length_beside_them() -> None:
    answer = (
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 99\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )
    with RawTarget(lambda n: (answer, False)) as target:
        assert texts(target.url, 1) == ["ok"]


@pytest.mark.parametrize(
    "lengths",
    [b"content-length: 2\r\nContent-Length: 2\r\n", b"content-length: 2, 2\r\n"],
    ids=["twice", "as-a-list"],
)
def test_a_content_length_repeated_with_one_value_is_read_as_one(lengths: bytes) -> None:
    """RFC 9110 8.6 lets a recipient take the same length given twice as one (h11 does; a
    proxy may add its own): refusing it would leave every PATCH in doubt."""
    answer = b"HTTP/1.1 200 OK\r\n" + lengths + b"x-after: 1\r\n\r\nok"
    with RawTarget(lambda n: (answer, False)) as target:
        assert texts(target.url, 2) == ["ok", "ok"]
        assert target.connections == 1


def test_content_lengths_that_differ_are_a_protocol_error() -> None:
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok!"
    with (
        RawTarget(lambda n: (answer, False)) as target,
        pytest.raises(httpx.RemoteProtocolError, match=r"not an HTTP/1\.1 answer"),
    ):
        texts(target.url, 1)
