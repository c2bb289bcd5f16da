"""A webhook body sent with `Content-Encoding`: gzip and deflate are decoded, never past the
body limit (a small compressed body that expands without end, a "zip bomb", is refused
after at most `limit` bytes of output); any other coding is refused naming it."""

from __future__ import annotations

import zlib

from bridge.errors import BodyTooLarge, PayloadError, UnsupportedMedia

SUPPORTED = ("gzip", "deflate")
MAX_CODINGS = 4  # "gzip, gzip" is legal; a long list of them is not a real sender
_STEP = 65_536  # output produced per decompress call


def codings(header: str | None) -> list[str]:
    """The codings of a `Content-Encoding` value, in the order the sender applied them;
    415 naming the first one that is not gzip or deflate."""
    if not header:
        return []
    names = [c.strip().lower() for c in header.split(",")]
    found = [n for n in names if n and n != "identity"]
    for name in found:
        if name not in ("gzip", "x-gzip", "deflate"):
            raise UnsupportedMedia(
                f"Content-Encoding {name[:40]!r} is not supported; send gzip, deflate or none"
            )
    if len(found) > MAX_CODINGS:
        raise UnsupportedMedia(f"Content-Encoding: at most {MAX_CODINGS} codings")
    return ["gzip" if n == "x-gzip" else n for n in found]


def decode(body: bytes, applied: list[str], limit: int) -> bytes:
    """`body` with the codings undone, last applied first; 413 past `limit` bytes of output,
    400 when the data is not what its coding says."""
    for name in reversed(applied):
        body = _gunzip(body, limit) if name == "gzip" else _inflate(body, limit)
    return body


def _gunzip(data: bytes, limit: int) -> bytes:
    out: list[bytes] = []
    while True:  # a gzip body may hold several members, one after another
        data = _run(zlib.decompressobj(16 + zlib.MAX_WBITS), data, limit, out, "gzip")
        if not data.strip(b"\x00"):  # (trailing zero padding is allowed, as gzip allows it)
            return b"".join(out)


def _inflate(data: bytes, limit: int) -> bytes:
    # HTTP's "deflate" is the zlib format; some senders send raw deflate data instead.
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and int.from_bytes(data[:2]) % 31 == 0
    out: list[bytes] = []
    rest = _run(
        zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS),
        data,
        limit,
        out,
        "deflate",
    )
    if rest:
        raise PayloadError("body: data after the end of the deflate stream")
    return b"".join(out)


def _run(d: zlib._Decompress, data: bytes, limit: int, out: list[bytes], name: str) -> bytes:
    """Decode one stream into `out` (whose total stays within `limit`); what follows it."""
    size = sum(map(len, out))
    try:
        while not d.eof:
            chunk = d.decompress(data, _STEP)
            data = d.unconsumed_tail
            if not chunk and not data:
                break  # all input read, nothing more to give: the stream is cut short
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"body is over the limit of {limit} bytes once decoded")
            out.append(chunk)
    except zlib.error:
        raise PayloadError(f"body: not valid {name} data (Content-Encoding: {name})") from None
    if not d.eof:
        raise PayloadError(f"body: the {name} data ends before its stream does")
    return d.unused_data
