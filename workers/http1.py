"""HTTP/1.1 for the worker's requests: an httpx transport holding one connection, its
answers parsed by httptools.

httpx's own transport runs h11 (pure Python) under httpcore's pool and anyio; with them a
PATCH cost the worker about 250 µs of CPU on the client side alone. The bridge sends one small
request at a time on a connection and reads one small answer, so this transport does only
that: the request's head and body go out in one write, and the answer is fed to httptools
(llhttp in C, the parser uvicorn reads requests with). The same PATCH costs about 75 µs.

It is an `httpx.AsyncBaseTransport`, so what is above it stays httpx's: the Request (URL,
Host and Content-Length headers), the Response and its content decoding (gzip, deflate), the
timeouts a request carries (connect, read, write) and httpx's exceptions for every failure.

The connection is kept alive while the answers allow it (HTTP/1.1 keep-alive, no
`Connection: close`), and is not reused after it sat idle longer than httpx's keep-alive
expiry (5 s), nor once the server has closed it or sent something unasked. A request that
fails or is cancelled mid-way closes it. Answers may use bare line feeds, carry a
Content-Length beside chunked framing (the chunks win) or give one Content-Length value more
than once, as h11 allows; trailers are not taken for headers; the head and the body are
capped. Stricter than h11: a header folded over two lines is a protocol error (in doubt,
for a PATCH). A header with a line break or NUL in it is refused before anything is sent.
What it does not do, because the bridge never needs it: HTTP/2, proxies
(workers/convocore.py takes httpx's transport when a proxy applies), upgrades, request
bodies streamed without a length (they are read whole first).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import ssl
import time
from typing import Any

import httptools
import httpx

READ_LIMIT = 2**16
KEEPALIVE_EXPIRY_S = 5.0  # httpx.Limits' default: an older idle connection is not reused
MAX_ANSWER_BYTES = 64 * 2**20  # an answer larger than this is refused, not held in memory
MAX_HEAD_BYTES = 64 * 2**10  # the same for its head (status line and headers), as h11's limit
_FRAMING = (b"transfer-encoding", b"content-length")  # a streamed body's: replaced by its length
_UNSAFE = re.compile(rb"[\r\n\0]")  # never sent in a header: it would end or split the head
_PARSE_ERRORS = (httptools.HttpParserError, httptools.HttpParserUpgrade)


def _not_http(exc: Exception, request: httpx.Request) -> httpx.RemoteProtocolError:
    return httpx.RemoteProtocolError(f"not an HTTP/1.1 answer: {exc!r}", request=request)


async def open_tcp(
    host: str, port: int, timeout: float | None, tls: ssl.SSLContext | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """TCP (and TLS, verified against `host`) to the first address of `host` that answers.
    A dead first address (say, a broken IPv6 route) must not use up the whole connect
    timeout: each address gets its share of it (uvloop's create_connection has no
    happy_eyeballs_delay to do this for us)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(addr[0]) for _, _, _, _, addr in infos)) or [host]
    share = None if timeout is None or len(addresses) == 1 else max(timeout / len(addresses), 1.0)
    last: OSError | TimeoutError = OSError(f"no address for {host}")
    for address in addresses:
        try:
            async with asyncio.timeout(share):
                reader, writer = await asyncio.open_connection(
                    address,
                    port,
                    limit=READ_LIMIT,
                    ssl=tls,
                    server_hostname=host if tls else None,
                )
        except (OSError, TimeoutError) as exc:
            last = exc
            continue
        sock: socket.socket | None = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return reader, writer
    try:
        raise last
    finally:
        del last  # the traceback holds this frame: no cycle left for the collector


class _Answer:
    """httptools' callbacks for one answer: its status, headers and body. An informational
    answer (100 Continue) before it is passed over."""

    __slots__ = (
        "body",
        "done",
        "head_done",
        "headers",
        "keep_alive",
        "messages",
        "parser",
        "size",
        "status",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """As new, to parse the answer again from its first byte."""
        # (the parser calls back into this answer: _read_answer breaks the cycle when done)
        self.parser: Any = httptools.HttpResponseParser(self)
        # as h11 reads them: bare line feeds, and a length beside chunks ignored (RFC 9112 6.3)
        self.parser.set_dangerous_leniencies(
            lenient_optional_cr_before_lf=True, lenient_chunked_length=True
        )
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.messages = 0  # begun: more than one after the answer is something unasked
        self.head_done = False
        self.done = False
        self.keep_alive = False

    def on_message_begin(self) -> None:
        self.messages += 1

    # whatever follows the answer in the same read is only counted (messages): unasked
    # (a chunked answer's trailers come after its head: they are not its headers)
    def on_header(self, name: bytes, value: bytes) -> None:
        if not (self.done or self.head_done):
            self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        if not self.done:
            self.status = self.parser.get_status_code()
            self.head_done = True

    def on_body(self, chunk: bytes) -> None:
        if not self.done:
            self.size += len(chunk)
            self.body.append(chunk)

    def on_message_complete(self) -> None:
        if self.done:
            return
        if 100 <= self.status < 200:  # informational: the answer itself follows
            self.messages -= 1
            self.status, self.head_done, self.headers = 0, False, []
        else:
            self.done = True
            self.keep_alive = self.parser.should_keep_alive()  # (reset once this returns)

    def framed(self) -> bool:
        """Whether the answer says where it ends (a length or chunks); if not, it ends when
        the server closes the connection."""
        return any(n.lower() in (b"content-length", b"transfer-encoding") for n, _ in self.headers)


def one_length(raw: bytes) -> bytes | None:
    """`raw` (an answer's first bytes, its head whole) with a Content-Length given more than
    once, or as a list, written once: the same value each time may be taken as one (RFC 9110
    8.6; h11 does, llhttp refuses it). None when there is nothing such to repair, or the
    values differ (a real error)."""
    end = raw.find(b"\n\r\n") + 3 if b"\n\r\n" in raw else raw.find(b"\n\n") + 2
    if end < 2:
        return None
    lines: list[bytes] = []
    values: set[bytes] = set()
    first, given = -1, 0
    for line in raw[:end].splitlines(keepends=True):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"content-length":
            given += len(parts := value.split(b","))
            values.update(v.strip() for v in parts)
            if first < 0:
                first = len(lines)
                lines.append(line)
            continue
        lines.append(line)
    if given < 2 or len(values) != 1 or not (value := values.pop()).isdigit():
        return None
    ending = b"\r\n" if lines[first].endswith(b"\r\n") else b"\n"
    lines[first] = b"Content-Length: " + value + ending
    return b"".join(lines) + raw[end:]


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def reusable(self) -> bool:
        """Still open, nothing unasked waiting on it, and not idle past the expiry."""
        return not (
            self.writer.is_closing()
            or self.reader.at_eof()
            or self.reader.exception() is not None
            or bool(getattr(self.reader, "_buffer", b""))
            or time.monotonic() - self.idle_since > KEEPALIVE_EXPIRY_S
        )

    def close(self) -> None:
        self.writer.close()


def _tls_context(verify: bool | ssl.SSLContext) -> ssl.SSLContext:
    return verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify)


class Http1Transport(httpx.AsyncBaseTransport):
    """One HTTP/1.1 connection, made when first needed and again whenever the last one
    cannot be reused; requests on it run one at a time."""

    def __init__(self, *, verify: bool | ssl.SSLContext = True) -> None:
        self._verify = verify
        self._tls: ssl.SSLContext | None = None
        self._conn: _Connection | None = None
        self._lock = asyncio.Lock()
        self._closed = False  # a request still running then closes its connection after it

    async def aclose(self) -> None:
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await conn.writer.wait_closed()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        async with self._lock:
            timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
            conn = self._conn
            if conn is None or not conn.reusable():
                if conn is not None:
                    conn.close()
                self._conn = None
                conn = await self._connect(request, timeouts.get("connect"))
            self._conn = None  # until the answer is whole: a failure leaves it closed
            try:
                answer, keep = await self._exchange(conn, request, timeouts)
            except BaseException:
                conn.close()
                raise
            if keep and not self._closed:
                conn.idle_since = time.monotonic()
                self._conn = conn
            else:
                conn.close()
            return httpx.Response(
                answer.status,
                headers=answer.headers,
                stream=httpx.ByteStream(b"".join(answer.body)),
                extensions={"http_version": b"HTTP/1.1"},
                request=request,
            )

    async def _connect(self, request: httpx.Request, timeout: float | None) -> _Connection:
        url = request.url
        tls = None
        if url.scheme == "https":
            if self._tls is None:
                self._tls = _tls_context(self._verify)
            tls = self._tls
        elif url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"{url.scheme!r} is not http or https", request=request)
        port = url.port or (443 if tls else 80)
        host = url.raw_host.decode("ascii")  # an international name as the Host header has it
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await open_tcp(host, port, timeout, tls)
        except TimeoutError:
            raise httpx.ConnectTimeout(
                f"connecting to {host}:{port} timed out", request=request
            ) from None
        except OSError as exc:  # ssl.SSLError included: a certificate not trusted
            raise httpx.ConnectError(str(exc) or type(exc).__name__, request=request) from None
        return _Connection(reader, writer)

    async def _exchange(
        self, conn: _Connection, request: httpx.Request, timeouts: dict[str, float | None]
    ) -> tuple[_Answer, bool]:
        body = await request.aread()
        headers = request.headers.raw
        if not isinstance(request.stream, httpx.ByteStream):  # streamed, now read whole
            headers = [(n, v) for n, v in headers if n.lower() not in _FRAMING]
            headers.append((b"Content-Length", str(len(body)).encode()))
        if _UNSAFE.search(b"".join(b"".join(pair) for pair in headers)):
            name = next(n for n, v in headers if _UNSAFE.search(n + v))
            raise httpx.LocalProtocolError(
                f"header {name.decode('latin-1')!r} has a line break or NUL in it",
                request=request,
            )
        head = [request.method.encode("ascii"), b" ", request.url.raw_path, b" HTTP/1.1\r\n"]
        for name, value in headers:
            head += (name, b": ", value, b"\r\n")
        head += (b"\r\n", body)
        try:
            conn.writer.write(b"".join(head))
            async with asyncio.timeout(timeouts.get("write")):
                await conn.writer.drain()
        except TimeoutError:
            raise httpx.WriteTimeout("write timed out", request=request) from None
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__, request=request) from None
        return await self._read_answer(conn, request, timeouts.get("read"))

    async def _read_answer(
        self, conn: _Connection, request: httpx.Request, timeout: float | None
    ) -> tuple[_Answer, bool]:
        """The answer, and whether the connection may carry another request."""
        answer = _Answer()
        try:
            return await self._read_into(answer, conn, request, timeout)
        finally:
            answer.parser = None

    async def _read_into(
        self, answer: _Answer, conn: _Connection, request: httpx.Request, timeout: float | None
    ) -> tuple[_Answer, bool]:
        head_only = request.method == "HEAD"  # its answer's length is not followed by a body
        # read before the head was whole: capped (llhttp buffers a header unbounded), and
        # kept for one repair of a repeated Content-Length
        head: list[bytes] = []
        repaired = False
        while True:
            try:
                async with asyncio.timeout(timeout):
                    data = await conn.reader.read(READ_LIMIT)
            except TimeoutError:
                raise httpx.ReadTimeout("read timed out", request=request) from None
            except OSError as exc:
                raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from None
            if not data:
                if answer.head_done and not answer.framed() and not head_only:
                    return answer, False  # its body ended with the connection
                raise httpx.RemoteProtocolError(
                    "the server closed the connection "
                    + ("mid-answer" if answer.messages else "without answering"),
                    request=request,
                )
            if not answer.head_done:
                head.append(data)
            try:
                answer.parser.feed_data(data)
            except _PARSE_ERRORS as exc:
                if answer.done:  # whatever broke came after the whole answer: not reused
                    return answer, False
                fixed = None if repaired else one_length(b"".join(head))
                if fixed is None:
                    raise _not_http(exc, request) from None
                repaired = True
                answer.reset()  # the same answer, its repeated length said once
                try:
                    answer.parser.feed_data(fixed)
                except _PARSE_ERRORS as again:
                    raise _not_http(again, request) from None
            if not answer.head_done and sum(map(len, head)) > MAX_HEAD_BYTES:
                raise httpx.RemoteProtocolError(
                    f"answer head larger than {MAX_HEAD_BYTES} bytes", request=request
                )
            if answer.size > MAX_ANSWER_BYTES:
                raise httpx.RemoteProtocolError(
                    f"answer larger than {MAX_ANSWER_BYTES} bytes", request=request
                )
            if answer.done:
                return answer, answer.messages == 1 and answer.keep_alive
            if head_only and answer.head_done:
                return answer, False
