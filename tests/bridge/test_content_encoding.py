"""Compressed webhook bodies: gzip and deflate decoded within the body limit, a zip bomb
refused before it costs memory, any other coding refused naming it."""

import gzip
import tracemalloc
import zlib

import pytest

from bridge.content_encoding import codings, decode
from bridge.errors import BodyTooLarge, PayloadError, UnsupportedMedia

JSON = b'{"agent_id": "a", "convo_id": "c"}' * 100
LIMIT = 1_048_576


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize(
    ("header", "body"),
    [
        ("gzip", gzip.compress(JSON)),
        ("x-gzip", gzip.compress(JSON)),
        ("GZIP", gzip.compress(JSON[:100]) + gzip.compress(JSON[100:])),  # two members
        ("deflate", zlib.compress(JSON)),
        ("deflate", raw_deflate(JSON)),  # what some senders call deflate
        ("deflate, gzip", gzip.compress(zlib.compress(JSON))),
        ("identity", JSON),
    ],
)
def test_gzip_and_deflate_bodies_are_decoded(header, body):
    assert decode(body, codings(header), LIMIT) == JSON


@pytest.mark.parametrize("header", ["br", "zstd", "gzip, compress", "snappy"])
def test_any_other_coding_is_415_naming_it(header):
    with pytest.raises(UnsupportedMedia) as err:
        codings(header)
    assert repr(header.split(", ")[-1]) in err.value.detail


def test_a_zip_bomb_is_413_and_costs_no_memory():
    bomb = gzip.compress(b"\0" * (64 * LIMIT), 9)  # 64 MB from about 64 KB
    assert len(bomb) < LIMIT // 10
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge) as err:
            decode(bomb, ["gzip"], LIMIT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "once decoded" in err.value.detail
    assert peak < 3 * LIMIT, peak  # never the 64 MB


def test_the_limit_applies_to_the_decoded_body():
    assert decode(gzip.compress(b"x" * 1000), ["gzip"], 1000) == b"x" * 1000
    with pytest.raises(BodyTooLarge):
        decode(gzip.compress(b"x" * 1001), ["gzip"], 1000)


@pytest.mark.parametrize(
    ("header", "body"),
    [
        ("gzip", b'{"not": "compressed"}'),
        ("gzip", gzip.compress(JSON)[:-8]),  # cut short
        ("gzip", b""),
        ("deflate", zlib.compress(JSON) + b"tail"),
        ("deflate", b"\xff\xfe garbage"),
    ],
)
def test_data_that_is_not_what_its_coding_says_is_400(header, body):
    with pytest.raises(PayloadError) as err:
        decode(body, codings(header), LIMIT)
    assert err.value.detail.startswith("body: "), err.value.detail
