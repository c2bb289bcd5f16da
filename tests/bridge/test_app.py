"""Every answer of POST /webhooks/{source}, over a real socket, with a real Redis."""

import time

import httpx
import orjson
import pytest

from bridge.app import build_app
from tests.conftest import SECRET
from tests.servers import free_port, keys_but_the_log, serve_app_in_thread
from tests.signing import signed, standard_headers

T0 = 1_764_000_000_000


def intent(**over):
    body = {
        "type": "conversation.update",
        "agent_id": "agent-1",
        "convo_id": "convo-1",
        "occurred_at": T0,
        "set": {"title": "Refund question", "state": "requested_chat"},
    }
    body.update(over)
    return body


def post(url, payload, secret=SECRET, **kw):
    body, headers = signed(secret, payload, **kw)
    return httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)


def test_signed_intent_is_queued_before_202(ingest_url, rclient):
    answer = post(ingest_url, intent())
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 1, "duplicates": 0, "ignored": 0, "unroutable": 0}
    pending = rclient.hgetall("cb:p:agent-1/convo-1")
    assert set(pending) == {b"f:title", b"f:state"}


def test_redelivery_is_answered_202_as_duplicate(ingest_url):
    assert post(ingest_url, intent(), msg_id="msg_1").json()["accepted"] == 1
    again = post(ingest_url, intent(), msg_id="msg_1")
    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicates": 1, "ignored": 0, "unroutable": 0}


def test_ids_with_url_characters_are_percent_encoded(ingest_url, rclient):
    assert post(ingest_url, intent(agent_id="a..b", convo_id="c?x=1#f%")).status_code == 202
    assert rclient.exists("cb:p:a..b/c%3Fx%3D1%23f%25")


@pytest.mark.parametrize(
    ("field", "value"),
    [("convo_id", "../../victim-agent/convos/victim-convo"), ("agent_id", "a/b")],
)
def test_an_agent_or_conversation_id_with_a_slash_is_400_naming_it(
    ingest_url, rclient, field, value
):
    answer = post(ingest_url, intent(**{field: value}))
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"].startswith(f"{field}: '/' is not allowed"), answer.text
    assert keys_but_the_log(rclient, "cb:*") == []


def test_an_array_of_intents_is_accepted_whole(ingest_url):
    answer = post(ingest_url, [intent(), intent(convo_id="convo-2")])
    assert answer.json() == {"accepted": 2, "duplicates": 0, "ignored": 0, "unroutable": 0}


def test_the_202_counts_events_that_wait_for_a_link(ingest_url, rclient):
    routed = intent(convo_id="convo-2")
    waiting = {k: v for k, v in intent().items() if k not in ("agent_id", "convo_id")}
    answer = post(ingest_url, [routed, {**waiting, "external_id": "T-1"}])
    assert answer.status_code == 202
    assert answer.json() == {"accepted": 2, "duplicates": 0, "ignored": 0, "unroutable": 1}
    assert rclient.zcard("cb:dlq") == 1


@pytest.mark.parametrize(
    ("payload", "names"),
    [
        (intent(set={"favouriteColour": "blue"}), "set.favouriteColour"),
        (intent(set={"messagesNum": "three"}), "set.messagesNum"),
        (intent(set={"state": "closed"}), "set.state"),
        (intent(set={"lastModified": 1}), "set.lastModified"),
        (intent(tags={"add": "vip"}), "tags.add"),
        (intent(handoff={"event": "escalated"}), "handoff.event"),
        (intent(occurred_at="yesterday"), "occurred_at"),
        (intent(occurred_at=10**16), "occurred_at"),
        (intent(convo_id=".."), "convo_id"),
        (intent(agent_id="a\nb"), "agent_id"),
        ([intent(), intent(set={"isBlocked": "yes"})], "[1].set.isBlocked"),
    ],
)
def test_invalid_intent_is_400_naming_the_field_and_nothing_is_queued(
    ingest_url, rclient, payload, names
):
    answer = post(ingest_url, payload)
    assert answer.status_code == 400
    body = answer.json()
    assert body["error"] == "invalid_payload"
    assert body["detail"].startswith(names), body["detail"]
    assert rclient.keys("cb:p:*") == []


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"a": NaN}',
        b"\xff\xfe{}",
        b"[1e999]",
        b'{"n": 123456789012345678901234567890}',
    ],
)
def test_malformed_json_is_400(ingest_url, raw):
    answer = httpx.post(
        f"{ingest_url}/webhooks/demo", content=raw, headers=standard_headers(SECRET, raw)
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_payload"


def test_missing_signature_is_401(ingest_url):
    answer = httpx.post(f"{ingest_url}/webhooks/demo", json=intent())
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_signature"


def test_wrong_signature_is_401_and_never_echoes_the_secret(ingest_url):
    answer = post(ingest_url, intent(), secret="whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFB")
    assert answer.status_code == 401
    assert SECRET not in answer.text and SECRET.removeprefix("whsec_") not in answer.text


def test_stale_timestamp_is_401(ingest_url):
    answer = post(ingest_url, intent(), ts=int(time.time()) - 301)
    assert answer.status_code == 401
    assert "tolerance" in answer.json()["detail"]


def test_one_matching_signature_among_several_is_enough(ingest_url):
    body, headers = signed(SECRET, intent())
    headers["webhook-signature"] = "v1,Zm9yZ2Vk " + headers["webhook-signature"] + " v2,abc"
    answer = httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 202


def test_unknown_source_is_404(ingest_url):
    body, headers = signed(SECRET, intent())
    answer = httpx.post(f"{ingest_url}/webhooks/nope", content=body, headers=headers)
    assert answer.status_code == 404


def test_body_over_the_limit_is_413_by_content_length(make_settings):
    settings = make_settings("[ingest]\nmax_body_bytes = 1000\n")
    with serve_app_in_thread(build_app(settings)) as url:
        big = orjson.dumps(intent(set={"notes": "x" * 3_000_000}))
        answer = httpx.post(
            f"{url}/webhooks/demo", content=big, headers=standard_headers(SECRET, big)
        )
    assert answer.status_code == 413


def test_chunked_body_over_the_limit_is_cut_off_while_streaming(make_settings, rclient):
    settings = make_settings("[ingest]\nmax_body_bytes = 1000\n")
    sent = []

    def chunks():
        for _ in range(3000):  # 3 MB in 1 kB chunks, no content-length
            sent.append(1)
            yield b"x" * 1024

    with serve_app_in_thread(build_app(settings)) as url:
        headers = standard_headers(SECRET, b"")
        try:
            answer = httpx.post(f"{url}/webhooks/demo", content=chunks(), headers=headers)
            assert answer.status_code == 413
        except httpx.HTTPError:
            pass  # the server may close the connection before the client finishes sending
    assert keys_but_the_log(rclient, "cb:*") == []


def test_a_client_sending_its_body_too_slowly_gets_408_and_nothing_is_queued(
    make_settings, rclient
):
    import socket
    import time

    settings = make_settings("[ingest]\nread_timeout_s = 0.5\n")
    body = orjson.dumps(intent())
    head = "".join(f"{k}: {v}\r\n" for k, v in standard_headers(SECRET, body).items())
    with serve_app_in_thread(build_app(settings)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            sock.sendall(
                f"POST /webhooks/demo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{head}\r\n".encode()
                + body[:5]
            )
            started = time.time()
            sock.settimeout(5)
            answer = sock.recv(4096).decode()  # the rest of the body never comes
            waited = time.time() - started
    assert answer.startswith("HTTP/1.1 408"), answer
    assert 0.4 < waited < 3
    assert keys_but_the_log(rclient, "cb:*") == []


def test_not_json_content_type_is_415(ingest_url):
    body, headers = signed(SECRET, intent())
    headers["content-type"] = "text/plain"
    answer = httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 415


def test_redis_unreachable_is_503_never_2xx(make_settings):
    settings = make_settings(env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    with serve_app_in_thread(build_app(settings)) as url:
        body, headers = signed(SECRET, intent())
        answer = httpx.post(f"{url}/webhooks/demo", content=body, headers=headers)
        ready = httpx.get(f"{url}/readyz")
        health = httpx.get(f"{url}/healthz")
    assert answer.status_code == 503
    assert ready.status_code == 503
    assert health.status_code == 200


def test_health_and_readiness(ingest_url):
    assert httpx.get(f"{ingest_url}/healthz").status_code == 200
    assert httpx.get(f"{ingest_url}/readyz").json() == {"status": "ready"}


def post_nested(url, depth):
    """An intent whose set.origin nests `depth` arrays (orjson itself writes only 254)."""
    inner = b"[" * depth + b"1" + b"]" * depth
    body = orjson.dumps(intent(set={"origin": 0})).replace(b'"origin":0', b'"origin":' + inner)
    return httpx.post(f"{url}/webhooks/demo", content=body, headers=standard_headers(SECRET, body))


@pytest.mark.parametrize("depth", [253, 300, 1000])
def test_a_value_nested_deeper_than_a_patch_can_carry_is_400_naming_the_field(
    ingest_url, rclient, depth
):
    answer = post_nested(ingest_url, depth)
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"].startswith("set.origin: nested more than 252 levels")
    assert rclient.keys("cb:p:*") == []


def test_a_value_nested_as_deep_as_a_patch_can_carry_is_accepted(ingest_url):
    assert post_nested(ingest_url, 252).status_code == 202


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_compressed_body_is_decoded_and_its_signature_checked_over_the_json(
    ingest_url, rclient, coding
):
    import gzip
    import zlib

    body, headers = signed(SECRET, intent(convo_id=f"zipped-{coding}"))
    packed = gzip.compress(body) if coding == "gzip" else zlib.compress(body)
    headers["content-encoding"] = coding
    answer = httpx.post(f"{ingest_url}/webhooks/demo", content=packed, headers=headers)
    assert answer.status_code == 202, answer.text
    assert rclient.hlen(f"cb:p:agent-1/zipped-{coding}") == 2


def test_a_signature_over_the_compressed_bytes_is_accepted_too(ingest_url, rclient):
    import gzip

    packed = gzip.compress(orjson.dumps(intent(convo_id="signed-packed")))
    headers = {**standard_headers(SECRET, packed), "content-encoding": "gzip"}
    answer = httpx.post(f"{ingest_url}/webhooks/demo", content=packed, headers=headers)
    assert answer.status_code == 202, answer.text
    assert rclient.hlen("cb:p:agent-1/signed-packed") == 2


def test_a_compressed_body_over_the_limit_once_decoded_is_413(ingest_url, rclient):
    import gzip

    body = orjson.dumps(intent(set={"title": "x" * 2_000_000}))
    headers = {**standard_headers(SECRET, body), "content-encoding": "gzip"}
    packed = gzip.compress(body)
    assert len(packed) < 100_000
    answer = httpx.post(f"{ingest_url}/webhooks/demo", content=packed, headers=headers)
    assert answer.status_code == 413, answer.text
    assert "once decoded" in answer.json()["detail"]
    assert keys_but_the_log(rclient, "cb:*") == []


def test_an_unsupported_content_encoding_is_415_naming_it(ingest_url, rclient):
    body, headers = signed(SECRET, intent())
    headers["content-encoding"] = "br"
    answer = httpx.post(f"{ingest_url}/webhooks/demo", content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert "'br'" in answer.json()["detail"]
    assert keys_but_the_log(rclient, "cb:*") == []
