"""The generic kind, declared in the config: each proof, body and answer a sender needs, and
settings that do not fit stopping start-up naming their key."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from bridge.config import _source
from bridge.errors import ConfigError, PayloadError, SignatureError, UnsupportedMedia
from bridge.providers import generic
from bridge.providers.base import WebhookRequest

NOW = 1_795_000_000
SECRET = "s3cret-value"
MAP = {"external_id": "id", "handoff.event": "'completed'"}


def source(secret: str = SECRET, **options):  # type: ignore[no-untyped-def]
    table = {"kind": "generic", "secret_env": "S", "map": MAP, **options}
    return _source("g", table, {"S": secret})


def request(body: bytes, headers: dict[str, str], url: str = "https://b.example/webhooks/g"):  # type: ignore[no-untyped-def]
    return WebhookRequest("POST", url, headers, body, NOW)


def hex_hmac(message: bytes, algorithm: str = "sha256", key: str = SECRET) -> str:
    return hmac.new(key.encode(), message, algorithm).hexdigest()


def test_a_timestamped_template_verifies_and_a_stale_time_does_not():
    src = source(
        signature_header="X-Slack-Signature",
        signature_prefix="v0=",
        signed="v0:{timestamp}:{body}",
        timestamp_header="X-Slack-Request-Timestamp",
    )
    body = b'{"id":"C1"}'
    good = {
        "x-slack-signature": "v0=" + hex_hmac(f"v0:{NOW - 5}:".encode() + body),
        "x-slack-request-timestamp": str(NOW - 5),
    }
    generic.verify(src, request(body, good), 300)
    stale = {
        "x-slack-signature": "v0=" + hex_hmac(f"v0:{NOW - 900}:".encode() + body),
        "x-slack-request-timestamp": str(NOW - 900),
    }
    with pytest.raises(SignatureError, match="tolerance"):
        generic.verify(src, request(body, stale), 300)


def test_a_t_v1_list_header_takes_any_listed_signature():
    src = source(
        signature_header="Sig",
        signature_list_key="v1",
        timestamp_list_key="t",
        signed="{timestamp}.{body}",
        signature_algorithm="sha512",
    )
    body = b'{"id":"C1"}'
    right = hex_hmac(f"{NOW}.".encode() + body, "sha512")
    header = f"t={NOW},v1={'0' * 128},v1={right},v0=ignored"
    generic.verify(src, request(body, {"sig": header}), 300)
    with pytest.raises(SignatureError):
        generic.verify(src, request(body, {"sig": f"t={NOW},v1={'0' * 128}"}), 300)


def test_a_form_body_signed_over_the_url_and_sorted_parameters():
    url = "https://bridge.example/webhooks/g?x=1"
    src = source(
        body="form",
        signature_header="X-Twilio-Signature",
        signature_prefix="",
        signature_algorithm="sha1",
        signature_encoding="base64",
        signed="{url}{params}",
    )
    body = b"To=%2B1555&From=%2B1666&Body=hi+there"
    message = (url + "Bodyhi thereFrom+1666To+1555").encode()
    sig = base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha1).digest()).decode()
    req = request(
        body, {"x-twilio-signature": sig, "content-type": "application/x-www-form-urlencoded"}, url
    )
    generic.verify(src, req, 300)
    assert generic.parse(src, req) == {"To": "+1555", "From": "+1666", "Body": "hi there"}
    generic.accepts(src, req.headers)
    with pytest.raises(UnsupportedMedia):
        generic.accepts(src, {"content-type": "application/json"})
    with pytest.raises(SignatureError):
        generic.verify(src, request(body, {"x-twilio-signature": sig}, url + "&y=2"), 300)


def test_public_key_proofs_ed25519_and_rsa_sha256():
    body = b'{"id":"C1"}'
    ed = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pem = ed.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    src = source(
        pem.decode(),
        proof="public_key",
        signature_algorithm="ed25519",
        signature_prefix="",
        signed="{timestamp}{body}",
        timestamp_header="X-Signature-Timestamp",
    )
    sig = ed.sign(str(NOW).encode() + body).hex()
    generic.verify(src, request(body, {"x-signature": sig, "x-signature-timestamp": str(NOW)}), 300)
    with pytest.raises(SignatureError):
        generic.verify(
            src, request(body + b" ", {"x-signature": sig, "x-signature-timestamp": str(NOW)}), 300
        )

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    src = source(
        pem.decode(),
        proof="public_key",
        signature_algorithm="rsa-sha256",
        signature_header="X-Freshchat-Signature",
        signature_prefix="",
        signature_encoding="base64",
    )
    sig = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
    generic.verify(src, request(body, {"x-freshchat-signature": sig}), 300)
    with pytest.raises(SignatureError):
        generic.verify(src, request(b"{}", {"x-freshchat-signature": sig}), 300)


@pytest.mark.parametrize(
    ("options", "good", "bad"),
    [
        (
            {"proof": "basic"},
            {"authorization": "Basic " + base64.b64encode(b"bridge:pw").decode()},
            {"authorization": "Basic " + base64.b64encode(b"bridge:nope").decode()},
        ),
        ({"proof": "bearer"}, {"authorization": "Bearer bridge:pw"}, {"authorization": "Bearer x"}),
        (
            {"proof": "header", "token_header": "X-Token"},
            {"x-token": "bridge:pw"},
            {"x-token": "x"},
        ),
    ],
)
def test_shared_secret_proofs(options, good, bad):
    src = source("bridge:pw", **options)
    generic.verify(src, request(b"{}", good), 300)
    with pytest.raises(SignatureError):
        generic.verify(src, request(b"{}", bad), 300)
    with pytest.raises(SignatureError):
        generic.verify(src, request(b"{}", {}), 300)


def test_a_query_token_and_a_body_field_secret():
    src = source(proof="query", token_param="key")
    generic.verify(src, request(b"{}", {}, f"https://b.example/webhooks/g?key={SECRET}"), 300)
    with pytest.raises(SignatureError):
        generic.verify(src, request(b"{}", {}, "https://b.example/webhooks/g?key=x"), 300)
    src = source(proof="body_field", token_field="secret_key")
    generic.verify(src, request(f'{{"secret_key":"{SECRET}"}}'.encode(), {}), 300)
    for body in (b'{"secret_key":"x"}', b"{}", b"not json"):
        with pytest.raises(SignatureError):
            generic.verify(src, request(body, {}), 300)


SOAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00Dxx0000001gPL</OrganizationId>
   <Notification><Id>04l1</Id><sObject><sf:Id xmlns:sf="urn:sobject.enterprise.soap.sforce.com">5001</sf:Id></sObject></Notification>
   <Notification><Id>04l2</Id><sObject><sf:Id xmlns:sf="urn:sobject.enterprise.soap.sforce.com">5002</sf:Id></sObject></Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"""


def test_an_xml_body_maps_each_listed_event_and_answers_as_configured():
    src = _source(
        "sf",
        {
            "kind": "generic",
            "secret_env": "S",
            "body": "xml",
            "proof": "body_field",
            "token_field": "Envelope.Body.notifications.OrganizationId",
            "events": "to_array(Envelope.Body.notifications.Notification)",
            "answer_status": 200,
            "answer_body": "<Ack>true</Ack>",
            "answer_media_type": "text/xml",
            "map": {"event_id": "Id", "external_id": "sObject.Id", "handoff.event": "'completed'"},
        },
        {"S": "00Dxx0000001gPL"},
    )
    req = request(SOAP, {"content-type": "text/xml; charset=utf-8"})
    generic.accepts(src, req.headers)
    generic.verify(src, req, 300)
    events = generic.normalize(src, req, generic.parse(src, req))
    assert [(e.event_id, e.intent.external_id) for e in events] == [
        ("04l1", "5001"),
        ("04l2", "5002"),
    ]
    answer = generic.acknowledge(src, {"accepted": 2})
    assert (answer.status, answer.body, answer.media_type) == (200, "<Ack>true</Ack>", "text/xml")
    with pytest.raises(PayloadError, match="DOCTYPE"):
        generic.parse(src, request(b'<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>', {}))


def test_a_handshake_is_echoed_once_verified():
    src = source(challenge="type == 'url_verification' && challenge || `null`")
    answer = generic.challenge(src, request(b'{"type":"url_verification","challenge":"abc"}', {}))
    assert answer is not None and (answer.status, answer.body) == (200, "abc")
    assert generic.challenge(src, request(b'{"type":"event_callback"}', {})) is None
    assert generic.acknowledge(src, {"accepted": 1}) is None  # the default: 202 with counts


def test_a_handshake_value_in_the_query_is_echoed() -> None:
    src = source(challenge_param="echo")
    answer = generic.challenge(src, request(b"{}", {}, "https://b.example/webhooks/g?echo=x1"))
    assert answer is not None and answer.body == "x1"
    assert generic.challenge(src, request(b"{}", {}, "https://b.example/webhooks/g")) is None


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"signature_algorithm": "ed25519"}, "signature_algorithm"),
        ({"proof": "public_key"}, "signature_algorithm"),
        ({"signed": "{body}{nonce}"}, "signed"),
        ({"signed": "{params}"}, "signed"),
        ({"signed": "{timestamp}{body}"}, "timestamp_header"),
        ({"timestamp_list_key": "t"}, "timestamp_list_key"),
        ({"proof": "body_field"}, "token_field"),
        ({"proof": "carrier-pigeon"}, "proof"),
        ({"body": "yaml"}, "body"),
        ({"answer_status": 500}, "answer_status"),
        ({"events": "a[["}, "events"),
        ({"public_url": "bridge.example"}, "public_url"),
    ],
)
def test_settings_that_do_not_fit_name_their_key(options, key):
    with pytest.raises(ConfigError) as err:
        source(**options)
    assert err.value.key == f"sources.g.{key}"


def test_an_event_mapped_to_nothing_needs_no_external_id() -> None:
    """A map that gives no id for the events it does not read (Zoho Desk's thread events)
    ignores them instead of refusing the request."""
    src = _source(
        "g",
        {
            "kind": "generic",
            "secret_env": "S",
            "map": {
                "external_id": "kind == 'ticket' && id || `null`",
                "handoff.event": "kind == 'ticket' && 'completed' || `null`",
            },
        },
        {"S": SECRET},
    )
    req = request(b'[{"kind":"thread","id":"t1"},{"kind":"ticket","id":"k1"}]', {})
    thread, ticket = generic.normalize(src, req, generic.parse(src, req))
    assert thread.intent is None
    assert ticket.intent is not None and ticket.intent.external_id == "k1"


def test_answer_empty_answers_a_body_with_no_events_and_nothing_else() -> None:
    src = source(answer_empty=True, answer_status=200)
    for body in (b"", b" ", b"[]", b"{}", b" [ ] "):
        answer = generic.challenge(src, request(body, {}))
        assert answer is not None and answer.status == 200, body
    assert generic.challenge(src, request(b'{"id":"x"}', {})) is None
    assert generic.challenge(source(), request(b"[]", {})) is None  # off by default
    generic.accepts(src, {"content-length": "0"})  # an empty check needs no Content-Type
    with pytest.raises(UnsupportedMedia):
        generic.accepts(source(), {"content-length": "0"})
