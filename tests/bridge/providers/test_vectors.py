"""Every signed test vector in tests/vectors (made by tests/vectors/make_vectors.py): verify at
the case's `now`, then the event ids and intents each kind must produce."""

import json
import re
from pathlib import Path

import pytest

from bridge.config import _source
from bridge.errors import SignatureError
from bridge.providers import KINDS, provider
from bridge.providers.base import WebhookRequest

VECTORS = Path(__file__).resolve().parents[2] / "vectors"


def _cases():
    for f in sorted(VECTORS.glob("*.json")):
        doc = json.loads(f.read_text())
        for case in doc["cases"]:
            yield pytest.param(doc["kind"], case, id=case["name"])


CASES = list(_cases())


def source_for(kind, case):
    table = {"kind": kind, "secret_env": "S", **case.get("config", {})}
    return _source(kind, table, {"S": case["secret"]})


def request_for(case):
    return WebhookRequest(
        method=case.get("method", "POST"),
        url=case.get("url", "https://bridge.example.com/webhooks/x"),
        headers={k.lower(): v for k, v in case["headers"].items()},
        body=case["body"].encode(),
        received_at=case["now"],
    )


def test_vectors_are_present():
    kinds = {p.values[0] for p in CASES}
    assert kinds == set(KINDS)


# Where a shape may come from: the senders' own documentation, the spec, or a public
# repository's captured fixture, all of which a reviewer can open and check. Not paste sites.
CITABLE_HOSTS = {
    "github.com",  # the Standard Webhooks spec, SDKs, open-source integrations' fixtures
    "docs.svix.com",
    "developer.zendesk.com",
    "support.zendesk.com",
    "developers.intercom.com",
    "developers.hubspot.com",
    "dev.frontapp.com",
    "developer.helpscout.com",
    "support.freshdesk.com",
    "developer.clickup.com",
    "developer.salesforce.com",
    "www.twilio.com",
    "platform.text.com",
    "api.slack.com",
    "crmsupport.freshworks.com",
    "docs.crisp.chat",
    "developers.gorgias.com",
    "developer.kustomer.com",
    "desk.zoho.com",
}


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_every_case_cites_the_public_source_of_its_shape(kind, case):
    source = case["source"]
    assert source.startswith(("https://", "README.md")), source
    hosts = set(re.findall(r"https://([^/\s]+)/", source))
    assert hosts and hosts <= CITABLE_HOSTS, source


@pytest.mark.parametrize(("kind", "case"), CASES)
def test_vector(kind, case):
    module = provider(kind)
    source = source_for(kind, case)
    request = request_for(case)
    if not case["valid"]:
        with pytest.raises(SignatureError):
            module.verify(source, request, 300)
        return
    module.verify(source, request, 300)
    if "expect_ack" in case:
        answer = module.acknowledge(source, {"accepted": len(case["intents"])})
        ack = case["expect_ack"]
        assert answer is not None and answer.status == ack["status"]
        assert answer.media_type == ack["media_type"] and ack["contains"] in answer.body
    if "expect_response" in case:
        answer = module.challenge(source, request)
        assert answer is not None and answer.body == case["expect_response"]["body"]
        return
    events = module.normalize(source, request, module.parse(source, request))
    assert [e.event_id for e in events] == case["event_ids"]
    mapped = [e.intent for e in events if e.intent is not None and not e.intent.is_empty()]
    assert [i.to_json() for i in mapped] == case["intents"]
