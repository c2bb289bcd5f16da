"""Write the signed test vectors in tests/vectors/<kind>.json: `python -m tests.vectors.make_vectors`.

Each case is one request a sender makes (headers, exact body bytes, the time it is received)
and what the bridge must make of it: whether it verifies, the event ids (dedup) and the
intents. Payload shapes follow the senders' documented examples or captured fixtures; each
case names its `source`. Requests are signed by the senders' official libraries where one
exists (`standardwebhooks`, `svix`, `hubspot-api-client`), else by tests/signing.py, which
follows the sender's documentation. Secrets and times are fixed, so the files are the same on
every run; tests/vectors/test_make_vectors.py checks the committed files against this script.

`--check` compares instead of writing, and exits 1 when a file is out of date.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hubspot.utils.signature import Signature as HubSpotSignature
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook
from twilio.request_validator import RequestValidator

from tests.signing import sign_as

HERE = Path(__file__).resolve().parent
NOW = 1_795_000_000  # 2026-11-18T11:06:40Z, the receipt time of every case
KINDS = (
    "standard",
    "zendesk",
    "intercom",
    "hubspot",
    "front",
    "freshdesk",
    "helpscout",
    "generic",
    "salesforce",
    "twilio",
    "livechat",
    "freshchat",
    "crisp",
    "gorgias",
    "kustomer",
    "zohodesk",
)
URL = "https://bridge.example.com/webhooks/"

# Where each shape comes from (the senders' docs, or open-source captured fixtures).
SRC = {
    "standard": "https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md",
    "svix": "https://docs.svix.com/receiving/verifying-payloads/how-manual",
    "intent": "README.md 'The intent' (the standard kind's body is the bridge's own intent)",
    "zendesk": "https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events/",
    "zendesk_sig": "https://developer.zendesk.com/documentation/webhooks/verifying/",
    "intercom": "https://developers.intercom.com/docs/references/webhooks/webhook-models",
    "intercom_1x": "https://github.com/zulip/zulip/blob/main/zerver/webhooks/intercom/fixtures/conversation_admin_assigned.json (a captured API 1.x conversation.admin.assigned notification)",
    "intercom_1x_nobody": "https://github.com/zulip/zulip/blob/main/zerver/webhooks/intercom/fixtures/conversation_user_created.json (API 1.x: assignee {type: nobody_admin, id: null})",
    "hubspot": "https://developers.hubspot.com/docs/api/webhooks (example payload)",
    "hubspot_sig": "https://developers.hubspot.com/docs/api/webhooks/validating-requests",
    "front": "https://dev.frontapp.com/reference/events",
    "front_app": "https://dev.frontapp.com/docs/application-webhooks",
    "helpscout": "https://developer.helpscout.com/webhooks/",
    "freshdesk": "README.md 'Freshdesk' automation-rule body, placeholders from https://support.freshdesk.com/support/solutions/articles/132589-using-webhooks-in-automation-rules",
    "clickup": "https://developer.clickup.com/docs/webhooktaskpayloads and https://developer.clickup.com/docs/webhooksignature",
}


def body_of(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


@dataclass
class Case:
    name: str
    source: str
    secret: str
    headers: dict[str, str]
    body: str
    valid: bool
    event_ids: list[str] = field(default_factory=list)
    intents: list[dict[str, Any]] = field(default_factory=list)
    now: int = NOW
    extra: dict[str, Any] = field(default_factory=dict)  # config, method, url, expect_response

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "secret": self.secret,
            "headers": self.headers,
            "body": self.body,
            "now": self.now,
            "valid": self.valid,
            "event_ids": self.event_ids,
            "intents": self.intents,
            **self.extra,
        }


def intent(external_id: str | None, occurred_at: int, **parts: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "conversation.update"}
    if external_id is not None:
        out["external_id"] = external_id
    out["occurred_at"] = occurred_at
    out.update(parts)
    return out


def altered(body: str) -> str:
    """The same body with one byte changed after signing."""
    return body.replace('"', "'", 1)


# --- standard -------------------------------------------------------------------------------

STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STD_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"


def std_headers(secret: str, msg_id: str, ts: int, body: str) -> dict[str, str]:
    """Signed by the reference library (standardwebhooks)."""
    sig = StandardWebhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body)
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sig}


def standard() -> list[Case]:
    one = {
        "type": "conversation.update",
        "agent_id": "agent-1",
        "convo_id": "convo-1",
        "occurred_at": 1794999990000,
        "set": {"state": "human-chatting", "chatAssignedTo": "sam@acme.test"},
        "tags": {"add": ["vip"]},
    }
    body = body_of(one)
    signed = std_headers(STD_SECRET, STD_ID, NOW - 5, body)
    batch = [
        {**one, "set": {"userEmail": "ada@example.test"}, "tags": {"remove": ["bot"]}},
        {
            "external_id": "T-77",
            "occurred_at": "2026-11-18T11:06:00Z",
            "handoff": {"event": "requested", "team_key": "billing"},
        },
    ]
    batch_body = body_of(batch)
    other = std_headers(STD_SECRET.replace("M", "N", 1), STD_ID, NOW - 5, body)
    src = f"{SRC['standard']}; body: {SRC['intent']}"
    return [
        Case("standard: signed intent", src, STD_SECRET, signed, body, True, [STD_ID], [one]),
        Case("standard: body changed after signing", src, STD_SECRET, signed, altered(body), False),
        Case(
            "standard: several signatures, one matches",
            src,
            STD_SECRET,
            {**signed, "webhook-signature": f"v1,{'A' * 43}= v2,x {signed['webhook-signature']}"},
            body,
            True,
            [STD_ID],
            [one],
        ),
        Case(
            "standard: signed with another secret",
            src,
            STD_SECRET,
            {**signed, "webhook-signature": other["webhook-signature"]},
            body,
            False,
        ),
        Case(
            "standard: timestamp 10 minutes old",
            src,
            STD_SECRET,
            std_headers(STD_SECRET, STD_ID, NOW - 600, body),
            body,
            False,
        ),
        Case(
            "standard: timestamp 10 minutes ahead",
            src,
            STD_SECRET,
            std_headers(STD_SECRET, STD_ID, NOW + 600, body),
            body,
            False,
        ),
        Case(
            "standard: an array of intents, one event id each",
            src,
            STD_SECRET,
            std_headers(STD_SECRET, "msg_batch", NOW - 1, batch_body),
            batch_body,
            True,
            ["msg_batch:0", "msg_batch:1"],
            [
                intent(
                    None,
                    1794999990000,
                    agent_id="agent-1",
                    convo_id="convo-1",
                    set={"userEmail": "ada@example.test"},
                    tags={"remove": ["bot"]},
                ),
                intent(
                    "T-77", 1794999960000, handoff={"event": "requested", "team_key": "billing"}
                ),
            ],
        ),
    ]


# --- zendesk --------------------------------------------------------------------------------

ZD_SECRET = "dGhpcyBpcyBhIHNpZ25pbmcgc2VjcmV0"


def zd_event(event_id: str, what: str, event: dict[str, Any], **detail: Any) -> dict[str, Any]:
    """An event-subscription body as Zendesk's ticket-events reference shows it."""
    return {
        "account_id": 22129848,
        "detail": {
            "actor_id": "8447388090494",
            "assignee_id": "1001",
            "brand_id": "8447346621310",
            "created_at": "2026-11-18T10:41:12Z",
            "group_id": "2002",
            "id": "35436",
            "requester_id": "8447388090494",
            "status": "OPEN",
            "tags": ["refund"],
            "updated_at": "2026-11-18T11:06:20Z",
            "via": {"channel": "web_service"},
            **detail,
        },
        "event": event,
        "id": event_id,
        "subject": "zen:ticket:35436",
        "time": "2026-11-18T11:06:20Z",
        "type": f"zen:event-type:ticket.{what}",
        "zendesk_event_version": "2022-11-06",
    }


def zendesk_headers(secret: str, body: bytes, at: int) -> dict[str, str]:
    headers = sign_as("zendesk", secret, body, "", now=at)
    headers.pop("content-type")
    return headers


def zendesk() -> list[Case]:
    at = 1794999980000
    src = f"{SRC['zendesk']}; signature: {SRC['zendesk_sig']}"

    def case(name: str, payload: Any, intents: list[dict[str, Any]], now: int = NOW) -> Case:
        body = body_of(payload)
        return Case(
            name,
            src,
            ZD_SECRET,
            zendesk_headers(ZD_SECRET, body.encode(), NOW - 2),
            body,
            True,
            [payload["id"]],
            intents,
            now,
        )

    assigned = zd_event(
        "cbe4028c-7239-495d-b020-f22348516046",
        "agent_assignment_changed",
        {"current": "1001", "previous": None},
    )
    base = case(
        "zendesk: agent assigned",
        assigned,
        [intent("35436", at, handoff={"event": "accepted", "by": "1001"})],
    )
    return [
        base,
        Case("zendesk: body changed", src, ZD_SECRET, base.headers, altered(base.body), False),
        Case(
            "zendesk: signed with another secret",
            src,
            ZD_SECRET,
            zendesk_headers("not-the-secret", base.body.encode(), NOW - 2),
            base.body,
            False,
        ),
        case(
            "zendesk: created, with its group",
            zd_event(
                "6f1a9c7e-created", "created", {"meta": {"sequence": {"id": "s1", "position": 1}}}
            ),
            [intent("35436", at, handoff={"event": "requested", "team_key": "2002"})],
        ),
        case(
            "zendesk: solved",
            zd_event("e2", "status_changed", {"current": "SOLVED", "previous": "OPEN"}),
            [intent("35436", at, handoff={"event": "completed"})],
        ),
        case(
            "zendesk: tags changed",
            zd_event("e3", "tags_changed", {"tags_added": ["vip"], "tags_removed": ["bot"]}),
            [intent("35436", at, tags={"add": ["vip"], "remove": ["bot"]})],
        ),
        case(
            "zendesk: group assignment changed",
            zd_event("e5", "group_assignment_changed", {"current": "3003", "previous": "2002"}),
            [intent("35436", at, set={"requestedTeamKey": "3003"})],
        ),
        case(
            "zendesk: unmapped event is ignored",
            zd_event("e4", "priority_changed", {"current": "HIGH", "previous": "LOW"}),
            [],
        ),
        Case(
            "zendesk: signature timestamp an hour old",
            src,
            ZD_SECRET,
            zendesk_headers(ZD_SECRET, base.body.encode(), NOW - 3600),
            base.body,
            False,
        ),
    ]


# --- intercom -------------------------------------------------------------------------------

IC_SECRET = "3f0c0b6a2d8e4d2c9a7b1e5f6a8c0d2e"


def ic_note(notif: str, topic: str, **item: Any) -> dict[str, Any]:
    """A notification_event as Intercom's webhook models (API 2.x) show it."""
    return {
        "type": "notification_event",
        "app_id": "abc123",
        "data": {
            "type": "notification_event_data",
            "item": {
                "type": "conversation",
                "id": "147",
                "created_at": 1794999000,
                "updated_at": 1794999970,
                "state": "open",
                "open": True,
                "admin_assignee_id": 814860,
                "team_assignee_id": None,
                "tags": {"type": "tag.list", "tags": [{"type": "tag", "id": "7", "name": "vip"}]},
                **item,
            },
        },
        "id": notif,
        "topic": topic,
        "delivery_status": "pending",
        "delivery_attempts": 1,
        "delivered_at": 0,
        "first_sent_at": 1794999970,
        "created_at": 1794999970,
        "self": None,
    }


def intercom() -> list[Case]:
    at = 1794999970000

    def case(
        name: str, payload: Any, intents: list[dict[str, Any]], src: str = SRC["intercom"]
    ) -> Case:
        body = body_of(payload)
        headers = sign_as("intercom", IC_SECRET, body.encode(), "")
        headers.pop("content-type")
        return Case(name, src, IC_SECRET, headers, body, True, [payload["id"]], intents)

    base = case(
        "intercom: admin assigned",
        ic_note("notif_ccd8a4d2-c6f3-4f3b-a0c0-3ea3f1c5e8c7", "conversation.admin.assigned"),
        [intent("147", at, handoff={"event": "accepted", "by": "814860"})],
    )
    sha256 = sign_as("generic", IC_SECRET, base.body.encode(), "")["x-signature"]
    return [
        base,
        Case(
            "intercom: body changed",
            SRC["intercom"],
            IC_SECRET,
            base.headers,
            altered(base.body),
            False,
        ),
        Case(
            "intercom: sha256 in place of sha1",
            SRC["intercom"],
            IC_SECRET,
            {"x-hub-signature": sha256},
            base.body,
            False,
        ),
        case(
            "intercom: closed",
            ic_note("notif_2", "conversation.admin.closed", state="closed", open=False),
            [intent("147", at, handoff={"event": "completed"})],
        ),
        case(
            "intercom: ping is ignored",
            {
                "type": "notification_event",
                "id": "notif_ping",
                "topic": "ping",
                "created_at": NOW,
                "data": {"item": {"type": "ping", "message": "something"}},
            },
            [],
        ),
    ]


# --- hubspot --------------------------------------------------------------------------------

HS_SECRET = "8c0f3a0e-6b1f-4c53-9f4a-2d8a1f0b7c11"
HS_URL = URL + "hubspot?portal=62515"


def hs_event(sub: int, event_id: int, at: int, kind: str, obj: int, **more: Any) -> dict[str, Any]:
    """One element of a HubSpot webhook batch, as HubSpot's webhooks page shows it."""
    return {
        "eventId": event_id,
        "subscriptionId": sub,
        "portalId": 62515,
        "appId": 9001,
        "occurredAt": at,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": obj,
        "changeSource": "USER",
        **more,
    }


def hs_headers(body: str, uri: str, ts_ms: int) -> dict[str, str]:
    """Signed by HubSpot's own SDK (hubspot-api-client), which signs the URI as given."""
    sig = HubSpotSignature.get_signature(HS_SECRET, body, "v3", uri, "POST", str(ts_ms))
    return {"x-hubspot-signature-v3": sig, "x-hubspot-request-timestamp": str(ts_ms)}


def hubspot() -> list[Case]:
    src = f"{SRC['hubspot']}; signature: {SRC['hubspot_sig']}"
    batch = [
        hs_event(
            4001,
            1,
            1794999960000,
            "conversation.propertyChange",
            5021,
            propertyName="assignedTo",
            propertyValue="A-12345",
        ),
        hs_event(
            4002,
            1,
            1794999990000,
            "conversation.propertyChange",
            5021,
            propertyName="status",
            propertyValue="CLOSED",
        ),
        hs_event(
            4003,
            7,
            1794999990000,
            "contact.propertyChange",
            77,
            changeSource="CRM",
            propertyName="firstname",
            propertyValue="Ada",
        ),
    ]
    body = body_of(batch)
    signed = hs_headers(body, HS_URL, NOW * 1000 - 2000)
    where = {"method": "POST", "url": HS_URL}
    created = body_of(
        [hs_event(4000, 3, 1794999900000, "conversation.creation", 5021, changeFlag="CREATED")]
    )
    return [
        Case(
            "hubspot: batch of three, two mapped",
            src,
            HS_SECRET,
            signed,
            body,
            True,
            ["4001:5021:1:1794999960000", "4002:5021:1:1794999990000", "4003:77:7:1794999990000"],
            [
                intent("5021", 1794999960000, handoff={"event": "accepted", "by": "A-12345"}),
                intent("5021", 1794999990000, handoff={"event": "completed"}),
            ],
            extra=where,
        ),
        Case(
            "hubspot: conversation created",
            src,
            HS_SECRET,
            hs_headers(created, HS_URL, NOW * 1000 - 1000),
            created,
            True,
            ["4000:5021:3:1794999900000"],
            [intent("5021", 1794999900000, handoff={"event": "requested"})],
            extra=where,
        ),
        Case("hubspot: body changed", src, HS_SECRET, signed, altered(body), False, extra=where),
        Case(
            "hubspot: signed for another URL",
            src,
            HS_SECRET,
            hs_headers(body, URL + "hubspot?portal=1", NOW * 1000 - 2000),
            body,
            False,
            extra=where,
        ),
        Case(
            "hubspot: timestamp 6 minutes old",
            src,
            HS_SECRET,
            hs_headers(body, HS_URL, (NOW - 360) * 1000),
            body,
            False,
            extra=where,
        ),
    ]


# --- front ----------------------------------------------------------------------------------

FR_SECRET = "a1b2c3d4e5f6a7b8c9d0"


def fr_event(event_id: str, what: str, target: Any) -> dict[str, Any]:
    """A Front event as its events reference shows it."""
    return {
        "_links": {"self": f"https://api2.frontapp.com/events/{event_id}"},
        "id": event_id,
        "type": what,
        "emitted_at": 1794999984.75,
        "source": {
            "_meta": {"type": "teammate"},
            "data": {"id": "tea_1", "email": "sam@acme.test"},
        },
        "target": target,
        "conversation": {"id": "cnv_55c8c149", "subject": "Refund", "status": "assigned"},
    }


def fr_app(event: dict[str, Any]) -> dict[str, Any]:
    """An application webhook wraps the event (Front's application-webhooks page)."""
    return {"type": event["type"], "authorization": {"id": "cmp_1"}, "payload": event}


def front() -> list[Case]:
    at = 1794999984750
    src = f"{SRC['front_app']}; event: {SRC['front']}"

    def case(name: str, payload: Any, event_id: str, intents: list[dict[str, Any]]) -> Case:
        body = body_of(payload)
        headers = sign_as("front", FR_SECRET, body.encode(), "", now=NOW - 1)
        headers.pop("content-type")
        return Case(name, src, FR_SECRET, headers, body, True, [event_id], intents)

    tag = {"_meta": {"type": "tag"}, "data": {"id": "tag_1", "name": "vip"}}
    kim = {"_meta": {"type": "teammate"}, "data": {"id": "tea_2", "email": "kim@acme.test"}}
    base = case(
        "front: app webhook, tag added",
        fr_app(fr_event("evt_55c8c149", "tag", tag)),
        "evt_55c8c149",
        [intent("cnv_55c8c149", at, tags={"add": ["vip"]})],
    )
    challenge_body = body_of({"type": "sync", "authorization": {"id": "cmp_1"}})
    challenge = sign_as("front", FR_SECRET, challenge_body.encode(), "", now=NOW - 1)
    challenge.pop("content-type")
    return [
        base,
        Case("front: body changed", src, FR_SECRET, base.headers, altered(base.body), False),
        case(
            "front: assigned",
            fr_app(fr_event("evt_2", "assign", kim)),
            "evt_2",
            [intent("cnv_55c8c149", at, handoff={"event": "accepted", "by": "kim@acme.test"})],
        ),
        case(
            "front: archived, event not wrapped",
            fr_event("evt_3", "archive", None),
            "evt_3",
            [intent("cnv_55c8c149", at, handoff={"event": "completed"})],
        ),
        case(
            "front: reopened",
            fr_app(fr_event("evt_4", "reopen", None)),
            "evt_4",
            [intent("cnv_55c8c149", at, handoff={"event": "requested"})],
        ),
        case(
            "front: untagged",
            fr_app(fr_event("evt_5", "untag", tag)),
            "evt_5",
            [intent("cnv_55c8c149", at, tags={"remove": ["vip"]})],
        ),
        Case(
            "front: set-up challenge",
            SRC["front_app"],
            FR_SECRET,
            {**challenge, "x-front-challenge": "chl_9f8e7d"},
            challenge_body,
            True,
            extra={"expect_response": {"status": 200, "body": "chl_9f8e7d"}},
        ),
    ]


# --- freshdesk ------------------------------------------------------------------------------

FD_SECRET = "fd-shared-secret-5b7c"


def freshdesk() -> list[Case]:
    payload = {
        "ticket_id": "4821",
        "event": "assigned",
        "status": "Open",
        "agent_email": "kim@acme.test",
        "group": "Billing",
        "tags": "vip,refund",
        "updated_at": "2026-11-18T10:46:20Z",
    }
    body = body_of(payload)
    digest = hashlib.sha256(body.encode()).hexdigest()
    resolved = body_of({**payload, "event": "updated", "status": "Resolved", "tags": ""})
    return [
        Case(
            "freshdesk: assigned with tags",
            SRC["freshdesk"],
            FD_SECRET,
            {"x-bridge-secret": FD_SECRET},
            body,
            True,
            [digest],
            [
                intent(
                    "4821",
                    1794998780000,
                    handoff={"event": "accepted", "by": "kim@acme.test"},
                    tags={"add": ["vip", "refund"]},
                )
            ],
        ),
        Case(
            "freshdesk: resolved",
            SRC["freshdesk"],
            FD_SECRET,
            {"x-bridge-secret": FD_SECRET},
            resolved,
            True,
            [hashlib.sha256(resolved.encode()).hexdigest()],
            [intent("4821", 1794998780000, handoff={"event": "completed"})],
        ),
        Case(
            "freshdesk: wrong secret",
            SRC["freshdesk"],
            FD_SECRET,
            {"x-bridge-secret": "fd-shared-secret-0000"},
            body,
            False,
        ),
        Case("freshdesk: no secret header", SRC["freshdesk"], FD_SECRET, {}, body, False),
    ]


# --- helpscout ------------------------------------------------------------------------------

HSC_SECRET = "0123456789abcdefghij0123456789abcdefghij"  # Help Scout: at most 40 characters


def helpscout() -> list[Case]:
    convo = {
        "id": 2391938111,
        "number": 349,
        "threads": 2,
        "type": "email",
        "folderId": 1234,
        "status": "closed",
        "state": "published",
        "subject": "Refund",
        "mailboxId": 85,
        "createdAt": "2026-11-18T10:45:00Z",
        "closedBy": 9865,
        "userUpdatedAt": "2026-11-18T11:05:50Z",
        "assignee": {
            "id": 9865,
            "type": "user",
            "first": "Sam",
            "last": "Lee",
            "email": "sam@acme.test",
        },
        "tags": [{"id": 1, "color": "#929499", "tag": "refund"}],
    }
    body = body_of(convo)
    digest = hashlib.sha256(body.encode()).hexdigest()
    at = 1794999950000

    def case(name: str, event: str, intents: list[dict[str, Any]], valid_body: str = body) -> Case:
        headers = sign_as("helpscout", HSC_SECRET, valid_body.encode(), "", event=event)
        headers.pop("content-type")
        return Case(
            name,
            SRC["helpscout"],
            HSC_SECRET,
            headers,
            valid_body,
            True,
            [f"{digest}:{event}"],
            intents,
        )

    closed = case(
        "helpscout: status closed",
        "convo.status",
        [intent("2391938111", at, handoff={"event": "completed"})],
    )
    return [
        closed,
        Case(
            "helpscout: body changed",
            SRC["helpscout"],
            HSC_SECRET,
            closed.headers,
            altered(body),
            False,
        ),
        case(
            "helpscout: assigned",
            "convo.assigned",
            [intent("2391938111", at, handoff={"event": "accepted", "by": "sam@acme.test"})],
        ),
        case(
            "helpscout: created",
            "convo.created",
            [intent("2391938111", at, handoff={"event": "requested"})],
        ),
    ]


# --- generic --------------------------------------------------------------------------------

GEN_SECRET = "clickup-webhook-secret-7d2"
CLICKUP_MAP = {
    "event_id": "history_items[0].id",
    "occurred_at": "to_number(history_items[0].date)",
    "external_id": "task_id",
    "set.notes": "history_items[0].after.status",
    "handoff.event": "history_items[0].after.status == 'complete' && 'completed' || null",
}


def generic() -> list[Case]:
    """ClickUp's taskStatusUpdated, mapped with JMESPath; ClickUp signs the body with a hex
    HMAC-SHA256 in X-Signature, no prefix."""
    payload = {
        "event": "taskStatusUpdated",
        "history_items": [
            {
                "id": "2800787326209560239",
                "type": 1,
                "date": "1794999950000",
                "field": "status",
                "parent_id": "162641285",
                "data": {"status_type": "closed"},
                "source": None,
                "user": {
                    "id": 183,
                    "username": "John",
                    "email": "john@acme.test",
                    "color": "#7b68ee",
                    "initials": "J",
                    "profilePicture": None,
                },
                "before": {
                    "status": "in progress",
                    "color": "#d3d3d3",
                    "orderindex": 1,
                    "type": "custom",
                },
                "after": {
                    "status": "complete",
                    "color": "#6bc950",
                    "orderindex": 2,
                    "type": "closed",
                },
            }
        ],
        "task_id": "1vwwavv",
        "webhook_id": "7fa3ec74-69a8-4530-a251-8a13730bd204",
    }
    body = body_of(payload)
    config = {"kind": "generic", "signature_prefix": "", "map": CLICKUP_MAP}
    sig = sign_as("generic", GEN_SECRET, body.encode(), "")["x-signature"].removeprefix("sha256=")
    return [
        Case(
            "generic: ClickUp task status, mapped with JMESPath",
            SRC["clickup"],
            GEN_SECRET,
            {"x-signature": sig},
            body,
            True,
            ["2800787326209560239"],
            [
                intent(
                    "1vwwavv",
                    1794999950000,
                    set={"notes": "complete"},
                    handoff={"event": "completed"},
                )
            ],
            extra={"config": config},
        ),
        Case(
            "generic: body changed",
            SRC["clickup"],
            GEN_SECRET,
            {"x-signature": sig},
            altered(body),
            False,
            extra={"config": config},
        ),
        Case(
            "generic: wrong signature",
            SRC["clickup"],
            GEN_SECRET,
            {"x-signature": "0" * 64},
            body,
            False,
            extra={"config": config},
        ),
    ]


SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_SRC = (
    "https://api.slack.com/authentication/verifying-requests-from-slack (v0 signature); "
    "https://api.slack.com/events/url_verification and https://api.slack.com/events/app_mention"
)
SLACK_CONFIG = {
    "kind": "generic",
    "signature_header": "X-Slack-Signature",
    "signature_prefix": "v0=",
    "signed": "v0:{timestamp}:{body}",
    "timestamp_header": "X-Slack-Request-Timestamp",
    "challenge": "type == 'url_verification' && challenge || `null`",
    "map": {
        "event_id": "event_id",
        "external_id": "event.channel",
        "handoff.event": "event.type == 'app_mention' && 'requested' || `null`",
    },
}


def slack_headers(body: str, ts: int) -> dict[str, str]:
    """Signed as Slack's request-verification page says: v0= + hex HMAC-SHA256 of
    `v0:{timestamp}:{body}` keyed with the app's signing secret."""
    mac = hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256)
    return {
        "content-type": "application/json",
        "x-slack-request-timestamp": str(ts),
        "x-slack-signature": "v0=" + mac.hexdigest(),
    }


def generic_slack() -> list[Case]:
    mention = body_of({
        "token": "ZZZZZZWSxiZZZ2yIvs3peJ",
        "team_id": "T123ABC456",
        "api_app_id": "A123ABC456",
        "event": {
            "type": "app_mention",
            "user": "U123ABC456",
            "text": "<@U0LAN0Z89> a human, please",
            "ts": "1794999990.000200",
            "channel": "C123ABC456",
            "event_ts": "1794999990.000200",
        },
        "type": "event_callback",
        "event_id": "Ev123ABC456",
        "event_time": 1794999990,
    })  # fmt: skip
    challenge = body_of(
        {
            "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    )
    return [
        Case(
            "generic: Slack app_mention, v0 signature over the timestamp and body",
            SLACK_SRC, SLACK_SECRET, slack_headers(mention, NOW - 3), mention, True,
            ["Ev123ABC456"], [intent("C123ABC456", NOW * 1000, handoff={"event": "requested"})],
            extra={"config": SLACK_CONFIG},
        ),
        Case(
            "generic: Slack url_verification is echoed",
            SLACK_SRC, SLACK_SECRET, slack_headers(challenge, NOW - 3), challenge, True,
            extra={
                "config": SLACK_CONFIG,
                "expect_response": {"body": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"},
            },
        ),
        Case(
            "generic: Slack request older than the tolerance",
            SLACK_SRC, SLACK_SECRET, slack_headers(mention, NOW - 600), mention, False,
            extra={"config": SLACK_CONFIG},
        ),
    ]  # fmt: skip


# --- as senders really send (issue 13): shapes the first version of each kind missed ------

STD_UNPADDED = "whsec_c2VjcmV0LWtleS0yMC1ieXRlcyE"  # base64 of 20 bytes, its "=" dropped
SRC["svix_lib"] = "https://github.com/svix/svix-webhooks/blob/main/python/svix/webhooks.py"


def standard_more() -> list[Case]:
    src = f"{SRC['standard']}; body: {SRC['intent']}"
    released = {
        "type": "conversation.update",
        "agent_id": "agent-1",
        "convo_id": "convo-1",
        "occurred_at": 1794999990000,
        "handoff": {"event": "released"},
    }
    body = body_of(released)
    svix_sig = SvixWebhook(STD_SECRET).sign(
        "msg_svix_1", datetime.fromtimestamp(NOW - 3, UTC), body
    )
    svix = {"svix-id": "msg_svix_1", "svix-timestamp": str(NOW - 3), "svix-signature": svix_sig}
    huge = {**std_headers(STD_SECRET, STD_ID, NOW, body), "webhook-timestamp": "9" * 400}
    return [
        Case(
            "standard: released handoff (the human let go)",
            src,
            STD_SECRET,
            std_headers(STD_SECRET, "msg_rel", NOW - 1, body),
            body,
            True,
            ["msg_rel"],
            [released],
        ),
        Case(
            "standard: secret whose base64 lost its = padding (the reference library pads it)",
            src,
            STD_UNPADDED,
            std_headers(STD_UNPADDED, "msg_pad", NOW - 1, body),
            body,
            True,
            ["msg_pad"],
            [released],
        ),
        Case(
            "standard: a sender hosted on Svix (svix-id, svix-timestamp, svix-signature)",
            f"{SRC['svix']}; signed by {SRC['svix_lib']}",
            STD_SECRET,
            svix,
            body,
            True,
            ["msg_svix_1"],
            [released],
        ),
        Case(
            "standard: Svix headers, body changed",
            SRC["svix"],
            STD_SECRET,
            svix,
            altered(body),
            False,
        ),
        Case("standard: a 400-digit timestamp", src, STD_SECRET, huge, body, False),
    ]


def zendesk_more() -> list[Case]:
    at = 1794999980000
    src = f"{SRC['zendesk']}; signature: {SRC['zendesk_sig']}"
    trigger_src = (
        "README.md Zendesk trigger body; placeholders from "
        "https://support.zendesk.com/hc/en-us/articles/4408886858138-Zendesk-placeholders-reference; "
        "headers from https://developer.zendesk.com/documentation/webhooks/anatomy-of-a-webhook-request/"
    )

    def signed(
        name: str,
        payload: Any,
        ids: list[str],
        intents: list[dict[str, Any]],
        source: str = src,
        **headers: str,
    ) -> Case:
        body = body_of(payload)
        return Case(
            name,
            source,
            ZD_SECRET,
            {**zendesk_headers(ZD_SECRET, body.encode(), NOW - 2), **headers},
            body,
            True,
            ids,
            intents,
        )

    def trigger(
        event: str, assignee: str = "kim@acme.test", tags: str = "refund vip"
    ) -> dict[str, Any]:
        return {
            "ticket_id": "35436",
            "event": event,
            "status": "Open",
            "assignee": assignee,
            "group": "Billing",
            "tags": tags,
            "updated_at": "2026-11-18T11:06Z",  # {{ticket.updated_at_with_timestamp}}: minutes
        }

    unassigned = trigger("unassigned", assignee="")
    return [
        signed(
            "zendesk: agent unassigned (current null)",
            zd_event("e6", "agent_assignment_changed", {"current": None, "previous": "1001"}),
            ["e6"],
            [intent("35436", at, handoff={"event": "released"})],
        ),
        signed(
            "zendesk: reopened (solved to open)",
            zd_event("e7", "status_changed", {"current": "OPEN", "previous": "SOLVED"}),
            ["e7"],
            [intent("35436", at, handoff={"event": "requested"})],
        ),
        signed(
            "zendesk: trigger webhook, assigned (dedup on the invocation id)",
            trigger("assigned"),
            ["8350205582"],
            [intent("35436", 1794999960000, handoff={"event": "accepted", "by": "kim@acme.test"})],
            trigger_src,
            **{"x-zendesk-webhook-invocation-id": "8350205582"},
        ),
        signed(
            "zendesk: trigger webhook, tags (the whole list)",
            trigger("tags"),
            ["8350205583"],
            [intent("35436", 1794999960000, set={"tags": ["refund", "vip"]})],
            trigger_src,
            **{"x-zendesk-webhook-invocation-id": "8350205583"},
        ),
        signed(
            "zendesk: trigger webhook, unassigned, no invocation id (sha256 of the body)",
            unassigned,
            [hashlib.sha256(body_of(unassigned).encode()).hexdigest()],
            [intent("35436", 1794999960000, handoff={"event": "released"})],
            trigger_src,
        ),
    ]


def intercom_more() -> list[Case]:
    at = 1794999970000

    def case(
        name: str, payload: Any, intents: list[dict[str, Any]], src: str = SRC["intercom"]
    ) -> Case:
        body = body_of(payload)
        headers = sign_as("intercom", IC_SECRET, body.encode(), "")
        headers.pop("content-type")
        return Case(name, src, IC_SECRET, headers, body, True, [payload["id"]], intents)

    def v1_note(notif: str, assignee: dict[str, Any]) -> dict[str, Any]:
        """API 1.x: the conversation names its `assignee`; no admin_/team_assignee_id."""
        note = ic_note(notif, "conversation.admin.assigned", assignee=assignee)
        del note["data"]["item"]["admin_assignee_id"], note["data"]["item"]["team_assignee_id"]
        return note

    added = {"type": "tag.list", "tags": [{"type": "tag", "id": "9", "name": "refund"}]}
    return [
        case(
            "intercom: API 1.x assignment (assignee: {type: admin, id})",
            v1_note(
                "notif_v1",
                {"type": "admin", "id": "1957471", "name": "Tim Abbott", "email": "tim@zulip.com"},
            ),
            [intent("147", at, handoff={"event": "accepted", "by": "1957471"})],
            SRC["intercom_1x"],
        ),
        case(
            "intercom: open conversation assigned to an admin and a team",
            ic_note("notif_open", "conversation.admin.open.assigned", team_assignee_id=5017691),
            [
                intent(
                    "147",
                    at,
                    set={"requestedTeamKey": "5017691"},
                    handoff={"event": "accepted", "by": "814860"},
                )
            ],
            "https://developers.intercom.com/docs/references/2.8/changelog (Open Conversation Assigned topic); "
            + SRC["intercom"],
        ),
        case(
            "intercom: assigned to a team only",
            ic_note(
                "notif_team",
                "conversation.admin.assigned",
                admin_assignee_id=None,
                team_assignee_id=5017691,
            ),
            [intent("147", at, set={"requestedTeamKey": "5017691"})],
        ),
        case(
            "intercom: unassigned (no admin, no team)",
            ic_note("notif_unassigned", "conversation.admin.assigned", admin_assignee_id=None),
            [intent("147", at, handoff={"event": "released"})],
        ),
        case(
            "intercom: API 1.x unassigned (assignee type nobody_admin)",
            v1_note("notif_nobody", {"type": "nobody_admin", "id": None}),
            [intent("147", at, handoff={"event": "released"})],
            SRC["intercom_1x_nobody"],
        ),
        case(
            "intercom: reopened by an admin",
            ic_note("notif_opened", "conversation.admin.opened"),
            [intent("147", at, handoff={"event": "requested"})],
        ),
        case(
            "intercom: tag added (tags_added, not every tag of the conversation)",
            ic_note("notif_3", "conversation_part.tag.created", tags_added=added),
            [intent("147", at, tags={"add": ["refund"]})],
        ),
    ]


def hubspot_more() -> list[Case]:
    src = f"{SRC['hubspot']}; signature: {SRC['hubspot_sig']}"
    association = {
        "eventId": 11, "subscriptionId": 4010, "portalId": 62515, "appId": 9001,
        "occurredAt": 1794999950000, "subscriptionType": "contact.associationChange",
        "attemptNumber": 0, "changeSource": "USER", "associationType": "CONTACT_TO_COMPANY",
        "fromObjectId": 77, "toObjectId": 501, "associationRemoved": False, "isPrimaryAssociation": False,
    }  # fmt: skip
    mixed = body_of(
        [
            association,
            hs_event(
                4002,
                2,
                1794999990000,
                "conversation.propertyChange",
                5021,
                propertyName="status",
                propertyValue="OPEN",
            ),
        ]
    )
    released = body_of(
        [
            hs_event(
                4001,
                3,
                1794999995000,
                "conversation.propertyChange",
                5021,
                propertyName="assignedTo",
                propertyValue="",
            ),
        ]
    )
    raw_url = URL + "hubspot?since=2026-11-18T11%3A06%3A00Z"
    decoded = raw_url.replace("%3A", ":")  # HubSpot's page: these escapes are decoded first
    return [
        Case(
            "hubspot: association change beside a reopen (ignored unread, no objectId)",
            f"{src}; association fields: https://developers.hubspot.com/changelog/new-subscription-types-for-webhooks",
            HS_SECRET,
            hs_headers(mixed, HS_URL, NOW * 1000 - 1000),
            mixed,
            True,
            ["4010:None:11:1794999950000", "4002:5021:2:1794999990000"],
            [intent("5021", 1794999990000, handoff={"event": "requested"})],
            extra={"method": "POST", "url": HS_URL},
        ),
        Case(
            "hubspot: unassigned (assignedTo empty)",
            src,
            HS_SECRET,
            hs_headers(released, HS_URL, NOW * 1000 - 1000),
            released,
            True,
            ["4001:5021:3:1794999995000"],
            [intent("5021", 1794999995000, handoff={"event": "released"})],
            extra={"method": "POST", "url": HS_URL},
        ),
        Case(
            "hubspot: %3A in the query, signed over the decoded URI (HubSpot's validation page)",
            src,
            HS_SECRET,
            {
                k: v
                for k, v in sign_as(
                    "hubspot", HS_SECRET, released.encode(), decoded, now=NOW - 1
                ).items()
                if k != "content-type"
            },
            released,
            True,
            ["4001:5021:3:1794999995000"],
            [intent("5021", 1794999995000, handoff={"event": "released"})],
            extra={"method": "POST", "url": raw_url},
        ),
        Case(
            "hubspot: %3A in the query, signed over the raw URI (HubSpot's Python SDK)",
            src,
            HS_SECRET,
            hs_headers(released, raw_url, NOW * 1000 - 1000),
            released,
            True,
            ["4001:5021:3:1794999995000"],
            [intent("5021", 1794999995000, handoff={"event": "released"})],
            extra={"method": "POST", "url": raw_url},
        ),
        Case(
            "hubspot: a 400-digit timestamp",
            src,
            HS_SECRET,
            {**hs_headers(released, HS_URL, NOW * 1000), "x-hubspot-request-timestamp": "9" * 400},
            released,
            False,
            extra={"method": "POST", "url": HS_URL},
        ),
    ]


FR_API_SECRET = "f3a8c1e07b9d4e2a8c6b5d4e3f2a1b0c"  # Front's company API secret (rule webhooks)


def front_more() -> list[Case]:
    at = 1794999984750
    src = f"{SRC['front_app']}; event: {SRC['front']}"
    rule_src = f"https://dev.frontapp.com/docs/rule-webhooks; event: {SRC['front']}"
    rule = {"config": {"variant": "rule"}}
    bare = body_of(fr_event("evt_6", "unassign", None))
    rule_sig = {
        "x-front-signature": sign_as("front_rule", FR_API_SECRET, bare.encode(), "")[
            "x-front-signature"
        ]
    }
    wrapped = body_of(fr_app(fr_event("evt_7", "unassign", None)))
    app_sig = {
        k: v
        for k, v in sign_as("front", FR_SECRET, wrapped.encode(), "", now=NOW - 1).items()
        if k != "content-type"
    }
    huge = {**app_sig, "x-front-request-timestamp": "9" * 400}
    return [
        Case(
            "front: rule webhook (HMAC-SHA1 of the body, no timestamp), unassigned",
            rule_src,
            FR_API_SECRET,
            rule_sig,
            bare,
            True,
            ["evt_6"],
            [intent("cnv_55c8c149", at, handoff={"event": "released"})],
            extra=rule,
        ),
        Case(
            "front: rule webhook, body changed",
            rule_src,
            FR_API_SECRET,
            rule_sig,
            altered(bare),
            False,
            extra=rule,
        ),
        Case(
            "front: rule webhook signed with another secret",
            rule_src,
            FR_API_SECRET,
            {
                "x-front-signature": sign_as("front_rule", FR_SECRET, bare.encode(), "")[
                    "x-front-signature"
                ]
            },
            bare,
            False,
            extra=rule,
        ),
        Case(
            "front: app webhook, unassigned",
            src,
            FR_SECRET,
            app_sig,
            wrapped,
            True,
            ["evt_7"],
            [intent("cnv_55c8c149", at, handoff={"event": "released"})],
        ),
        Case("front: a 400-digit timestamp", src, FR_SECRET, huge, wrapped, False),
    ]


def freshdesk_more() -> list[Case]:
    payload = {
        "ticket_id": "4821",
        "event": "unassigned",
        "status": "Open",
        "agent_email": "",
        "group": "Billing",
        "tags": "",
        "updated_at": "2026-11-18T10:46:20Z",
    }
    body = body_of(payload)
    return [
        Case(
            "freshdesk: unassigned (a rule with event unassigned)",
            SRC["freshdesk"],
            FD_SECRET,
            {"x-bridge-secret": FD_SECRET},
            body,
            True,
            [hashlib.sha256(body.encode()).hexdigest()],
            [intent("4821", 1794998780000, handoff={"event": "released"})],
        )
    ]


def helpscout_more() -> list[Case]:
    src = (
        SRC["helpscout"]
        + "; conversation object: https://developer.helpscout.com/mailbox-api/endpoints/conversations/get/"
    )
    convo = {
        "id": 2391938111, "number": 349, "type": "email", "status": "active", "state": "published",
        "mailboxId": 85, "userUpdatedAt": "2026-11-18T11:05:50Z",
        "tags": [{"id": 1, "color": "#929499", "tag": "refund"}, {"id": 2, "color": "#e52f28", "tag": "vip"}],
    }  # fmt: skip
    tagged = body_of(convo)
    unassigned = body_of({**convo, "assignee": None})

    def case(name: str, body: str, event: str, intents: list[dict[str, Any]]) -> Case:
        headers = sign_as("helpscout", HSC_SECRET, body.encode(), "", event=event)
        headers.pop("content-type")
        digest = hashlib.sha256(body.encode()).hexdigest()
        return Case(name, src, HSC_SECRET, headers, body, True, [f"{digest}:{event}"], intents)

    return [
        case(
            "helpscout: tags (the conversation's whole tag set)",
            tagged,
            "convo.tags",
            [intent("2391938111", 1794999950000, set={"tags": ["refund", "vip"]})],
        ),
        case(
            "helpscout: assigned to nobody",
            unassigned,
            "convo.assigned",
            [intent("2391938111", 1794999950000, handoff={"event": "released"})],
        ),
    ]


# --- tickets (issue 13 item 4): Intercom ticket topics, HubSpot Help Desk tickets -----------

IC_TICKET_SRC = (
    "https://developers.intercom.com/intercom-api-reference/reference/changelog (ticket topics); "
    "ticket object: https://developers.intercom.com/docs/references/2.15/rest-api/api.intercom.io/tickets/ticket"
)


def ic_ticket(notif: str, topic: str, **item: Any) -> dict[str, Any]:
    ticket = {
        "type": "ticket",
        "id": "1295",
        "ticket_id": "1390",
        "category": "Customer",
        "ticket_attributes": {
            "_default_title_": "Refund",
            "_default_description_": "Charged twice",
        },
        "ticket_state": {
            "type": "ticket_state",
            "id": "12",
            "category": "in_progress",
            "internal_label": "In progress",
            "external_label": "In progress",
        },
        "admin_assignee_id": "0",
        "team_assignee_id": "0",
        "created_at": 1794999000,
        "updated_at": 1794999970,
        "open": True,
        **item,
    }
    return {
        "type": "notification_event",
        "app_id": "abc123",
        "data": {"type": "notification_event_data", "item": ticket},
        "id": notif,
        "topic": topic,
        "delivery_attempts": 1,
        "first_sent_at": 1794999970,
        "created_at": 1794999970,
    }


ZULIP_IC = "https://github.com/zulip/zulip/blob/main/zerver/webhooks/intercom/fixtures/"


def ic_ticket_part(notif: str, topic: str, assigned_to: dict[str, Any], **ticket: Any) -> Any:
    """An assignment notification as Intercom sends it: `data.item` is a ticket_ticket_part
    holding the ticket and the part that assigned it (Zulip's captured fixtures)."""
    note = ic_ticket(notif, topic, **ticket)
    part = {
        "type": "ticket_part",
        "id": "37403424009",
        "part_type": "assignment",
        "created_at": 1794999970,
        "updated_at": 1794999970,
        "assigned_to": assigned_to,
        "author": {"id": "9608799", "type": "admin", "name": "John Doe"},
        "attachments": [],
        "redacted": False,
    }
    note["data"]["item"] = {
        "type": "ticket_ticket_part",
        "ticket": note["data"]["item"],
        "ticket_part": part,
    }
    return note


def intercom_tickets() -> list[Case]:
    at = 1794999970000

    def case(name: str, payload: Any, intents: list[dict[str, Any]]) -> Case:
        body = body_of(payload)
        headers = sign_as("intercom", IC_SECRET, body.encode(), "")
        headers.pop("content-type")
        return Case(name, IC_TICKET_SRC, IC_SECRET, headers, body, True, [payload["id"]], intents)

    resolved = {
        "type": "ticket_state",
        "id": "14",
        "category": "resolved",
        "internal_label": "Resolved",
        "external_label": "Resolved",
    }
    return [
        case(
            "intercom: ticket created",
            ic_ticket("notif_t1", "ticket.created"),
            [intent("ticket:1295", at, handoff={"event": "requested"})],
        ),
        case(
            "intercom: ticket assigned to an admin",
            ic_ticket("notif_t2", "ticket.admin.assigned", admin_assignee_id="991267883"),
            [intent("ticket:1295", at, handoff={"event": "accepted", "by": "991267883"})],
        ),
        case(
            "intercom: ticket unassigned (admin 0)",
            ic_ticket("notif_t3", "ticket.admin.assigned"),
            [intent("ticket:1295", at, handoff={"event": "released"})],
        ),
        case(
            "intercom: ticket assigned to a team",
            ic_ticket("notif_t4", "ticket.team.assigned", team_assignee_id="5017691"),
            [intent("ticket:1295", at, set={"requestedTeamKey": "5017691"})],
        ),
        case(
            "intercom: ticket resolved",
            ic_ticket("notif_t5", "ticket.state.updated", ticket_state=resolved, open=False),
            [intent("ticket:1295", at, handoff={"event": "completed"})],
        ),
        case(
            "intercom: ticket in progress is ignored",
            ic_ticket("notif_t6", "ticket.state.updated"),
            [],
        ),
    ]


def intercom_ticket_parts() -> list[Case]:
    """Ticket topics in the shape Intercom really sends (captured by Zulip)."""
    at = 1794999970000

    def case(name: str, fixture: str, payload: Any, intents: list[dict[str, Any]]) -> Case:
        body = body_of(payload)
        headers = sign_as("intercom", IC_SECRET, body.encode(), "")
        headers.pop("content-type")
        src = f"{ZULIP_IC}{fixture}"
        return Case(name, src, IC_SECRET, headers, body, True, [payload["id"]], intents)

    admin = {"type": "admin", "id": "9608799"}
    team = {"type": "team", "id": "9680998"}
    nobody = {"type": "nobody_admin", "id": None}
    closed = ic_ticket("notif_t10", "ticket.closed", open=False)
    closed["data"]["item"]["ticket_state"] = {
        "type": "ticket_state",
        "id": "4517896",
        "category": "resolved",
        "internal_label": "Resolved",
        "external_label": "Resolved",
    }
    return [
        case(
            "intercom: ticket.admin.assigned as sent (ticket_ticket_part)",
            "ticket_admin_assigned.json",
            ic_ticket_part("notif_t7", "ticket.admin.assigned", admin, admin_assignee_id="9608799"),
            [intent("ticket:1295", at, handoff={"event": "accepted", "by": "9608799"})],
        ),
        case(
            "intercom: ticket.team.assigned as sent (ticket_ticket_part)",
            "ticket_team_assigned.json",
            ic_ticket_part("notif_t8", "ticket.team.assigned", team, team_assignee_id="9680998"),
            [intent("ticket:1295", at, set={"requestedTeamKey": "9680998"})],
        ),
        case(
            "intercom: ticket.admin.assigned to nobody (ticket_ticket_part) releases",
            "ticket_closed.json (an assigned_to of type nobody_admin)",
            ic_ticket_part("notif_t9", "ticket.admin.assigned", nobody),
            [intent("ticket:1295", at, handoff={"event": "released"})],
        ),
        case(
            "intercom: ticket.closed completes",
            "ticket_closed.json",
            closed,
            [intent("ticket:1295", at, handoff={"event": "completed"})],
        ),
    ]


def hubspot_tickets() -> list[Case]:
    src = (
        f"{SRC['hubspot']} (tickets are CRM objects); generic format: "
        "https://developers.hubspot.com/changelog/public-beta-generic-webhook-subscriptions"
    )
    batch = body_of([
        hs_event(5001, 21, 1794999900000, "ticket.creation", 88001, changeFlag="CREATED"),
        hs_event(5002, 22, 1794999950000, "ticket.propertyChange", 88001, propertyName="hubspot_owner_id", propertyValue="52550153"),
        hs_event(5003, 23, 1794999960000, "object.propertyChange", 88002, objectTypeId="0-5", propertyName="hubspot_owner_id", propertyValue=""),
        hs_event(5004, 24, 1794999960000, "object.creation", 901, objectTypeId="0-1", changeFlag="CREATED"),
    ])  # fmt: skip
    return [
        Case(
            "hubspot: Help Desk tickets (legacy and generic formats), a contact ignored",
            src,
            HS_SECRET,
            hs_headers(batch, HS_URL, NOW * 1000 - 1000),
            batch,
            True,
            [
                "5001:88001:21:1794999900000",
                "5002:88001:22:1794999950000",
                "5003:88002:23:1794999960000",
                "5004:901:24:1794999960000",
            ],
            [
                intent("ticket:88001", 1794999900000, handoff={"event": "requested"}),
                intent(
                    "ticket:88001", 1794999950000, handoff={"event": "accepted", "by": "52550153"}
                ),
                intent("ticket:88002", 1794999960000, handoff={"event": "released"}),
            ],
            extra={"method": "POST", "url": HS_URL},
        )
    ]


def hubspot_ticket_stages() -> list[Case]:
    """Help Desk tickets moved between pipeline stages (`hs_pipeline_stage`): stage ids are
    per account; `4` is Closed in the default pipeline, and this source names `1` (New) its
    reopened stage; `2` (Waiting on contact) is neither."""
    src = (
        f"{SRC['hubspot']}; default ticket pipeline stage ids: "
        "https://developers.hubspot.com/docs/api/crm/pipelines"
    )
    batch = body_of([
        hs_event(5101, 31, 1794999900000, "ticket.propertyChange", 88001, propertyName="hs_pipeline_stage", propertyValue="4"),
        hs_event(5102, 32, 1794999950000, "ticket.propertyChange", 88001, propertyName="hs_pipeline_stage", propertyValue="1"),
        hs_event(5103, 33, 1794999960000, "object.propertyChange", 88002, objectTypeId="0-5", propertyName="hs_pipeline_stage", propertyValue="2"),
    ])  # fmt: skip
    return [
        Case(
            "hubspot: Help Desk ticket moved to a closed stage / a reopened stage / another",
            src,
            HS_SECRET,
            hs_headers(batch, HS_URL, NOW * 1000 - 1000),
            batch,
            True,
            [
                "5101:88001:31:1794999900000",
                "5102:88001:32:1794999950000",
                "5103:88002:33:1794999960000",
            ],
            [
                intent("ticket:88001", 1794999900000, handoff={"event": "completed"}),
                intent("ticket:88001", 1794999950000, handoff={"event": "requested"}),
            ],
            extra={"method": "POST", "url": HS_URL, "config": {"reopened_stages": ["1"]}},
        )
    ]


# --- senders of 2026-11-29: kinds that are the generic kind with shipped settings ---------

SF_ORG = "00Dxx0000001gPLEAY"  # the OrganizationId is what a Salesforce message proves
SF_SRC = (
    "https://developer.salesforce.com/docs/platform/api/guide/sforce-api-om-outboundmessaging-wsdl.html"
    " (notifications(), Notification, notificationsResponse Ack)"
)


def sf_message(org: str, *cases: dict[str, str]) -> str:
    """An outbound message on Case, as the outbound messaging WSDL defines it."""
    notes = "".join(
        "<Notification>"
        f"<Id>{c['note']}</Id>"
        '<sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        + "".join(f"<sf:{k}>{v}</sf:{k}>" for k, v in c.items() if k != "note")
        + "</sObject></Notification>"
        for c in cases
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId>"
        "<ActionId>04k5e000000CaRkAAK</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/60.0/00Dxx0000001gPL</EnterpriseUrl>"
        "<PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/60.0/00Dxx0000001gPL</PartnerUrl>"
        f"{notes}</notifications></soapenv:Body></soapenv:Envelope>"
    )


SF_ACK = {
    "status": 200,
    "media_type": "text/xml",
    "contains": "<Ack>true</Ack>",
}


def salesforce() -> list[Case]:
    body = sf_message(
        SF_ORG,
        {"note": "04l5e00000Gx7QzAAJ", "Id": "5005e00000AbCdEAAV", "OwnerId": "0055e000001TfGhAAK",
         "Status": "Working", "IsClosed": "false", "LastModifiedDate": "2026-11-18T11:05:00.000Z"},
        {"note": "04l5e00000Gx7R0AAJ", "Id": "5005e00000AbCdFAAV", "OwnerId": "00G5e000000QueueAA",
         "Status": "New", "IsClosed": "false", "LastModifiedDate": "2026-11-18T11:05:10.000Z"},
        {"note": "04l5e00000Gx7R1AAJ", "Id": "5005e00000AbCdGAAV", "OwnerId": "0055e000001TfGhAAK",
         "Status": "Closed", "IsClosed": "true", "LastModifiedDate": "2026-11-18T11:05:20.000Z"},
    )  # fmt: skip
    headers = {"content-type": "text/xml; charset=utf-8", "soapaction": '""'}
    return [
        Case(
            "salesforce: Case owner to a user, to a queue, Case closed (one message)",
            SF_SRC,
            SF_ORG,
            headers,
            body,
            True,
            ["04l5e00000Gx7QzAAJ", "04l5e00000Gx7R0AAJ", "04l5e00000Gx7R1AAJ"],
            [
                intent(
                    "5005e00000AbCdEAAV",
                    1794999900000,
                    handoff={"event": "accepted", "by": "0055e000001TfGhAAK"},
                ),
                intent(
                    "5005e00000AbCdFAAV",
                    1794999910000,
                    set={"requestedTeamKey": "00G5e000000QueueAA"},
                ),
                intent("5005e00000AbCdGAAV", 1794999920000, handoff={"event": "completed"}),
            ],
            extra={"expect_ack": SF_ACK},
        ),
        Case(
            "salesforce: another organization's message is refused (never acknowledged)",
            SF_SRC,
            SF_ORG,
            headers,
            sf_message(
                "00Dxx0000009ZZZEAY", {"note": "04l5e00000Gx7R2AAJ", "Id": "5005e00000AbCdHAAV"}
            ),
            False,
        ),
    ]


TW_TOKEN = "12345678901234567890123456789012"  # an auth token's shape: 32 hex characters
TW_URL = URL + "twilio"
TW_SRC = (
    "https://www.twilio.com/docs/conversations/conversations-webhooks (onConversationStateUpdated); "
    "signature: https://www.twilio.com/docs/usage/security#validating-requests"
)


def tw_request(params: dict[str, str]) -> tuple[dict[str, str], str]:
    """Form-encoded as Twilio posts it, signed by Twilio's own RequestValidator."""
    from urllib.parse import urlencode

    body = urlencode(params)
    sig = RequestValidator(TW_TOKEN).compute_signature(TW_URL, params)
    return {"content-type": "application/x-www-form-urlencoded", "x-twilio-signature": sig}, body


def twilio() -> list[Case]:
    closed = {
        "EventType": "onConversationStateUpdated",
        "AccountSid": "ACaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "ChatServiceSid": "ISbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "ConversationSid": "CHcccccccccccccccccccccccccccccccc",
        "DateCreated": "2026-11-18T10:40:00.000Z",
        "DateUpdated": "2026-11-18T11:06:00.000Z",
        "StateFrom": "active",
        "StateTo": "closed",
        "Reason": "API",
        "Source": "API",
        "RetryCount": "0",
    }
    headers, body = tw_request(closed)
    inactive_headers, inactive = tw_request({**closed, "StateTo": "inactive"})
    digest = hashlib.sha256(body.encode()).hexdigest()
    digest2 = hashlib.sha256(inactive.encode()).hexdigest()
    return [
        Case(
            "twilio: conversation closed completes (form body, signed URL + sorted parameters)",
            TW_SRC,
            TW_TOKEN,
            headers,
            body,
            True,
            [digest],
            [intent("CHcccccccccccccccccccccccccccccccc", 1794999960000,
                    handoff={"event": "completed"})],
            extra={"url": TW_URL},
        ),
        Case(
            "twilio: conversation inactive is ignored",
            TW_SRC,
            TW_TOKEN,
            inactive_headers,
            inactive,
            True,
            [digest2],
            [],
            extra={"url": TW_URL},
        ),
        Case(
            "twilio: a parameter changed after signing",
            TW_SRC,
            TW_TOKEN,
            headers,
            body.replace("closed", "active"),
            False,
            extra={"url": TW_URL},
        ),
        Case(
            "twilio: signed for another URL",
            TW_SRC,
            TW_TOKEN,
            headers,
            body,
            False,
            extra={"url": TW_URL + "?x=1"},
        ),
    ]  # fmt: skip


LC_SECRET = "lc-webhook-secret-3b9f"
LC_SRC = "https://platform.text.com/docs/management/webhooks/ (incoming_chat, chat_transferred, chat_deactivated)"


def lc_webhook(action: str, payload: dict[str, Any], secret: str = LC_SECRET) -> str:
    return body_of({
        "webhook_id": "0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
        "secret_key": secret,
        "action": action,
        "organization_id": "390e44e6-f1e6-0368c-z6ddb-74g14508c2ex",
        "payload": payload,
        "additional_data": {},
    })  # fmt: skip


def livechat() -> list[Case]:
    at = NOW * 1000  # LiveChat's webhooks carry no event time: the receipt time
    headers = {"content-type": "application/json"}
    chat = {
        "chat": {"id": "PJ0MRSHTDG", "users": [], "properties": {}, "thread": {"id": "K600PKZON8"}}
    }
    transferred = {
        "chat_id": "PJ0MRSHTDG",
        "thread_id": "K600PKZON8",
        "reason": "manual",
        "transferred_to": {"agent_ids": ["agent@acme.test"], "group_ids": [2]},
    }
    to_group = {
        "chat_id": "PJ0MRSHTDG",
        "thread_id": "K600PKZON8",
        "reason": "manual",
        "transferred_to": {"group_ids": [5]},
    }
    closed = {"chat_id": "PJ0MRSHTDG", "thread_id": "K600PKZON8", "user_id": "agent@acme.test"}
    cases = []
    for name, action, payload, expected in (
        ("incoming chat requests", "incoming_chat", chat, {"event": "requested"}),
        (
            "chat transferred to an agent accepts",
            "chat_transferred",
            transferred,
            {"event": "accepted", "by": "agent@acme.test", "team_key": "2"},
        ),
        (
            "chat transferred to a group requests that team",
            "chat_transferred",
            to_group,
            {"event": "requested", "team_key": "5"},
        ),
        ("chat deactivated completes", "chat_deactivated", closed, {"event": "completed"}),
    ):
        body = lc_webhook(action, payload)
        cases.append(
            Case(
                f"livechat: {name}",
                LC_SRC,
                LC_SECRET,
                headers,
                body,
                True,
                [hashlib.sha256(body.encode()).hexdigest()],
                [intent("PJ0MRSHTDG", at, handoff=expected)],
            )
        )
    cases.append(
        Case(
            "livechat: a wrong secret_key in the body",
            LC_SRC,
            LC_SECRET,
            headers,
            lc_webhook("chat_deactivated", closed, "guessed"),
            False,
        )
    )
    return cases  # fmt: skip


FC_KEY = serialization.load_pem_private_key(
    (HERE / "freshchat_test_key.pem").read_bytes(), password=None
)  # a stand-in for Freshchat's private key, made for these vectors only
FC_PUBLIC = (
    FC_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
FC_SRC = (
    "https://crmsupport.freshworks.com/support/solutions/articles/50000004461-freshchat-webhooks-payload-structure-and-authentication; "
    "envelope as captured in https://github.com/nyaruka/courier/blob/main/handlers/freshchat/handler_test.go"
)


def fc_event(action: str, at: str, data: dict[str, Any]) -> str:
    return body_of({
        "actor": {"actor_type": "agent", "actor_id": "c8fddfaf-622a-4a0e-b060-4f3ccbeab606"},
        "action": action,
        "action_time": at,
        "data": data,
    })  # fmt: skip


def fc_conversation(status: str) -> dict[str, Any]:
    return {
        "conversation_id": "7a454fde-c720-4c97-a61d-0ffe70449eb6",
        "app_id": "882f3926-b292-414b-a411-96380db373cd",
        "channel_id": "c1a3b7e0-5f44-4d2f-9e4b-1a2b3c4d5e6f",
        "status": status,
    }


def fc_headers(body: str) -> dict[str, str]:
    """Signed as Freshchat signs: base64 RSA-SHA256 (PKCS#1 v1.5) of the body."""
    assert isinstance(FC_KEY, rsa.RSAPrivateKey)
    sig = FC_KEY.sign(body.encode(), padding.PKCS1v15(), hashes.SHA256())
    return {
        "content-type": "application/json",
        "x-freshchat-signature": base64.b64encode(sig).decode(),
    }


def freshchat() -> list[Case]:
    conv = "7a454fde-c720-4c97-a61d-0ffe70449eb6"
    agent = "0f9c2e61-2b5d-4c5b-8f27-3e6b1d0c9a11"
    group = "5d3c1b2a-9e8f-4a7b-8c6d-2e1f0a9b8c7d"
    bodies = [
        ("assigned to an agent accepts", fc_event("conversation_assignment", "2026-11-18T11:05:00.000Z", {"assignment": {
            "assignor": "agent", "assignor_id": agent, "to_agent_id": agent, "to_group_id": group,
            "from_agent_id": "", "from_group_id": "", "conversation": fc_conversation("assigned")}}),
         intent(conv, 1794999900000, handoff={"event": "accepted", "by": agent})),
        ("assigned to a group only requests that team", fc_event("conversation_assignment", "2026-11-18T11:05:10.000Z", {"assignment": {
            "assignor": "system", "assignor_id": "", "to_agent_id": "", "to_group_id": group,
            "from_agent_id": agent, "from_group_id": "", "conversation": fc_conversation("new")}}),
         intent(conv, 1794999910000, handoff={"event": "requested", "team_key": group})),
        ("resolved completes", fc_event("conversation_resolution", "2026-11-18T11:05:20.000Z", {"resolve": {
            "resolver": "agent", "resolver_id": agent, "conversation": fc_conversation("resolved")}}),
         intent(conv, 1794999920000, handoff={"event": "completed"})),
        ("reopened requests again", fc_event("conversation_reopen", "2026-11-18T11:05:30.000Z", {"reopen": {
            "reopener": "user", "reopener_id": "882f3926", "conversation": fc_conversation("reopened")}}),
         intent(conv, 1794999930000, handoff={"event": "requested"})),
    ]  # fmt: skip
    cases = [
        Case(f"freshchat: {name}", FC_SRC, FC_PUBLIC, fc_headers(body), body, True,
             [hashlib.sha256(body.encode()).hexdigest()], [expected])
        for name, body, expected in bodies
    ]  # fmt: skip
    first = bodies[0][1]
    cases.append(Case("freshchat: body changed after signing", FC_SRC, FC_PUBLIC,
                      fc_headers(first), altered(first), False))  # fmt: skip
    return cases


CRISP_KEY = "crisp-hook-key-61d0"
CRISP_URL = URL + "crisp?key=" + CRISP_KEY
CRISP_SRC = (
    "https://docs.crisp.chat/references/web-hooks/v1/ (envelope, session:set_state); "
    "key in the URL: https://docs.crisp.chat/guides/web-hooks/website-hooks"
)


def crisp() -> list[Case]:
    site = "42286ab3-b29a-4fde-8538-da0ae501d825"
    session = "session_36ba3566-9651-4790-afc8-ffedbccc317f"

    def hook(event: str, data: dict[str, Any]) -> str:
        return body_of({"website_id": site, "event": event,
                        "data": {"website_id": site, "session_id": session, **data},
                        "timestamp": 1794999950000})  # fmt: skip

    resolved, pending = (
        hook("session:set_state", {"state": "resolved"}),
        hook("session:set_state", {"state": "pending"}),
    )
    headers = {"content-type": "application/json"}
    return [
        Case("crisp: conversation resolved completes", CRISP_SRC, CRISP_KEY, headers, resolved,
             True, [hashlib.sha256(resolved.encode()).hexdigest()],
             [intent(session, 1794999950000, handoff={"event": "completed"})],
             extra={"url": CRISP_URL}),
        Case("crisp: conversation pending is ignored", CRISP_SRC, CRISP_KEY, headers, pending,
             True, [hashlib.sha256(pending.encode()).hexdigest()], [], extra={"url": CRISP_URL}),
        Case("crisp: a wrong key in the URL", CRISP_SRC, CRISP_KEY, headers, resolved, False,
             extra={"url": URL + "crisp?key=guessed"}),
    ]  # fmt: skip


GG_SECRET = "gorgias-shared-secret-9e1"
GG_SRC = (
    "README.md 'Gorgias' body; variables from "
    "https://developers.gorgias.com/reference/the-tickethttpintegration-object"
)


def gorgias() -> list[Case]:
    at = NOW * 1000  # the template carries no zoned time: the receipt time

    def body(event: str, status: str, user: str, team: str) -> str:
        return body_of({"ticket_id": "123", "event": event, "status": status,
                        "assignee_user_id": user, "assignee_team_id": team})  # fmt: skip

    headers = {"content-type": "application/json", "x-bridge-secret": GG_SECRET}
    rows = [
        ("ticket created requests its team", body("created", "open", "None", "7"),
         {"event": "requested", "team_key": "7"}),
        ("assigned to a user accepts", body("assigned", "open", "4", "7"),
         {"event": "accepted", "by": "4"}),
        ("unassigned releases", body("assigned", "open", "None", "7"), {"event": "released"}),
        ("closed completes", body("status", "closed", "4", ""), {"event": "completed"}),
        ("reopened requests again", body("status", "open", "4", ""), {"event": "requested"}),
    ]  # fmt: skip
    cases = [
        Case(f"gorgias: {name}", GG_SRC, GG_SECRET, headers, b, True,
             [hashlib.sha256(b.encode()).hexdigest()], [intent("123", at, handoff=h)])
        for name, b, h in rows
    ]  # fmt: skip
    cases.append(Case("gorgias: a wrong shared secret", GG_SRC, GG_SECRET,
                      {**headers, "x-bridge-secret": "guessed"}, rows[0][1], False))  # fmt: skip
    return cases


KU_TOKEN = "6c0a4e2f9b7d4e1a8f3c5b2d7e9a1c4f"  # a webhook token: the HMAC key
KU_SRC = (
    "https://developer.kustomer.com/docs/events/event-catalog (envelope id, name, org, "
    "partition, data {type, id, attributes}, `changes` null on create); a captured "
    "kustomer.conversation.update: https://github.com/PipedreamHQ/pipedream/blob/master/"
    "components/kustomer/sources/updated-conversation-instant/test-event.mjs (each "
    "changes.attributes.<name> is {op, before, after}, relationships beside attributes, and "
    "updatedAt, modifiedAt, rev, modificationHistory changed on every update; tags and "
    "assignedUsers/assignedTeams are arrays of ids). That capture changes a name only: the "
    "status, assignedUsers, assignedTeams and tags entries here follow the same pattern, not "
    "seen in a capture; signature: https://developer.kustomer.com/docs/events/delivery-and-retries"
)


def ku_event(
    event_id: str, updated: str, attrs: dict[str, Any], changes: Any,
    name: str = "kustomer.conversation.update",
) -> str:  # fmt: skip
    return body_of({
        "id": event_id,
        "name": name,
        "org": "5f8481c6a22ab5b9d5f2dd8a",
        "partition": "5f8481c6a22ab5b9d5f2dd8a",
        "data": {"type": "conversation", "id": "6717c2b0e5b1f00012ab3501",
                 "attributes": {"status": "open", "assignedUsers": [], "assignedTeams": [],
                                "tags": [], **attrs, "updatedAt": updated, "modifiedAt": updated,
                                "rev": 4},
                 "relationships": {}},
        "createdAt": updated,
        "changes": changes,
    })  # fmt: skip


def ku_headers(body: str, event: str = "kustomer.conversation.update") -> dict[str, str]:
    """Signed as Kustomer signs: lowercase hex HMAC-SHA256 of the raw body, keyed with the token.
    X-Kustomer-Webhook-Event names the event; no time is sent."""
    sig = hmac.new(KU_TOKEN.encode(), body.encode(), hashlib.sha256).hexdigest()
    return {
        "content-type": "application/json",
        "x-kustomer-webhook-event": event,
        "x-kustomer-webhook-signature": sig,
    }


def kustomer() -> list[Case]:
    conv, user, team = (
        "6717c2b0e5b1f00012ab3501",
        "5f8481c6a22ab5b9d5f2dd91",
        "5f8481c6a22ab5b9d5f2dd77",
    )
    vip, refund = "5f8481c6a22ab5b9d5f2dd31", "5f8481c6a22ab5b9d5f2dd32"  # tag ids

    def ch(updated: str, **attrs: tuple[Any, Any]) -> dict[str, Any]:
        """`changes` as Kustomer sends it: each changed attribute, plus the bookkeeping ones."""
        before = "2026-11-18T10:00:00.000Z"
        book = {"updatedAt": (before, updated), "modifiedAt": (before, updated), "rev": (3, 4),
                "modificationHistory": ({"statusAt": before}, {"statusAt": updated})}  # fmt: skip
        return {
            "attributes": {
                k: {"op": "replace", "before": b, "after": a}
                for k, (b, a) in {**attrs, **book}.items()
            },
            "relationships": {},
        }

    rows = [
        ("assigned to a user accepts", "6717c2b1e5b1f00012ab3511", "2026-11-18T11:05:00.000Z",
         {"assignedUsers": [user], "assignedTeams": [team]},
         {"assignedUsers": ([], [user])}, {"handoff": {"event": "accepted", "by": user}}),
        ("assigned to a team only requests that team", "6717c2b1e5b1f00012ab3512",
         "2026-11-18T11:05:10.000Z", {"assignedTeams": [team]}, {"assignedTeams": ([], [team])},
         {"handoff": {"event": "requested", "team_key": team}}),
        ("done completes", "6717c2b1e5b1f00012ab3513", "2026-11-18T11:05:20.000Z",
         {"status": "done", "assignedUsers": [user]}, {"status": ("open", "done")},
         {"handoff": {"event": "completed"}}),
        ("reopened requests again", "6717c2b1e5b1f00012ab3514", "2026-11-18T11:05:30.000Z",
         {"status": "open", "assignedUsers": [user]}, {"status": ("done", "open")},
         {"handoff": {"event": "requested"}}),
        ("tags changed add its tag ids", "6717c2b1e5b1f00012ab3515", "2026-11-18T11:05:40.000Z",
         {"tags": [vip, refund], "assignedUsers": [user]}, {"tags": ([vip], [vip, refund])},
         {"tags": {"add": [vip, refund]}}),
    ]  # fmt: skip
    cases = []
    for name, event_id, updated, attrs, changed, expected in rows:
        body = ku_event(event_id, updated, attrs, ch(updated, **changed))
        at = int(datetime.fromisoformat(updated).timestamp() * 1000)
        cases.append(Case(f"kustomer: {name}", KU_SRC, KU_TOKEN, ku_headers(body), body, True,
                          [event_id], [intent(conv, at, **expected)]))  # fmt: skip
    other = ku_event("6717c2b1e5b1f00012ab3516", "2026-11-18T11:05:50.000Z",
                     {"assignedUsers": [user], "priority": 3},
                     ch("2026-11-18T11:05:50.000Z", priority=(2, 3)))  # fmt: skip
    cases.append(Case("kustomer: another field changed is ignored", KU_SRC, KU_TOKEN,
                      ku_headers(other), other, True, ["6717c2b1e5b1f00012ab3516"], []))  # fmt: skip
    created = ku_event("6717c2b1e5b1f00012ab3517", "2026-11-18T11:06:00.000Z",
                       {"assignedTeams": [team]}, None, "kustomer.conversation.create")  # fmt: skip
    cases.append(Case("kustomer: a create (changes null) is ignored", KU_SRC, KU_TOKEN,
                      ku_headers(created, "kustomer.conversation.create"), created, True,
                      ["6717c2b1e5b1f00012ab3517"], []))  # fmt: skip
    nulled = ku_event("6717c2b1e5b1f00012ab3518", "2026-11-18T11:06:10.000Z",
                      {"status": "done", "assignedUsers": [user]}, None)  # fmt: skip
    cases.append(Case("kustomer: an update with changes null is ignored", KU_SRC, KU_TOKEN,
                      ku_headers(nulled), nulled, True, ["6717c2b1e5b1f00012ab3518"], []))  # fmt: skip
    first = cases[0].body
    cases.append(Case("kustomer: body changed after signing", KU_SRC, KU_TOKEN,
                      ku_headers(first), altered(first), False))  # fmt: skip
    return cases


ZD_TOKEN = "zoho-desk-url-token-4c2e"
ZDK_URL = URL + "zohodesk?token=" + ZD_TOKEN
ZDK_SRC = (
    "https://desk.zoho.com/support/WebhookDocument.do (only 200 OK counts as received; the "
    "X-ZDesk-JWT header signs claims, not the body); the documented Ticket_Update sample as "
    "copied in https://github.com/emotorad-tech/emotorad-ai-architecture/blob/main/docs/"
    "api-shapes/zoho-webhook-ticket-update.json (an array of {eventType, eventTime: epoch ms "
    "as a string, orgId: a string, payload: the ticket, prevState: the whole ticket before}; "
    "closure is statusType, status a department's name for it) and "
    "https://github.com/simstudioai/sim/blob/main/apps/sim/lib/webhooks/providers/zoho-desk.ts "
    "(includePrevState on Ticket_Update; thread events carry the thread as payload). "
    "assigneeId is a documented ticket field; teamId in webhook payloads is not verified"
)


def zohodesk() -> list[Case]:
    ticket, agent, team = "1892000000093287", "1892000000056007", "1892000000068001"
    ticket_fields = {
        "id": ticket, "ticketNumber": "101", "subject": "Refund", "status": "Open",
        "statusType": "Open", "assigneeId": None, "teamId": None, "closedTime": None,
        "departmentId": "1892000000006907", "modifiedTime": "2026-11-18T10:00:00.000Z",
    }  # fmt: skip

    def event(kind: str, at: Any, now: dict[str, Any], was: dict[str, Any] | None = None,
              snapshot: bool = True) -> dict[str, Any]:  # fmt: skip
        """`prevState` (includePrevState) is the whole ticket before: the ticket with `was`."""
        out: dict[str, Any] = {"eventType": kind, "eventTime": at, "orgId": "55306166",
                               "payload": {**ticket_fields, **now}}  # fmt: skip
        if was is not None and snapshot:
            out["prevState"] = {**ticket_fields, **now, **was}
        return out

    closed = {"status": "Closed", "statusType": "Closed"}
    headers = {"content-type": "application/json"}
    rows = [
        ("assignee changed accepts", event("Ticket_Update", "1794999900000",
         {"assigneeId": agent}, {"assigneeId": None}),
         {"handoff": {"event": "accepted", "by": agent}}),
        ("team set with no assignee requests that team", event("Ticket_Update", "1794999910000",
         {"teamId": team}, {"teamId": None}),
         {"handoff": {"event": "requested", "team_key": team}}),
        ("statusType Closed completes", event("Ticket_Update", "1794999920000",
         {**closed, "assigneeId": agent}, {"status": "Open", "statusType": "Open"}),
         {"handoff": {"event": "completed"}}),
        ("a status renamed Resolved of statusType Closed completes",
         event("Ticket_Update", "1794999921000",
               {"status": "Resolved", "statusType": "Closed", "assigneeId": agent},
               {"status": "On Hold", "statusType": "On Hold"}),
         {"handoff": {"event": "completed"}}),
        ("reopened (statusType from Closed) requests again", event("Ticket_Update",
         "1794999930000", {"assigneeId": agent}, closed),
         {"handoff": {"event": "requested"}}),
        ("a new ticket with a team requests that team", event("Ticket_Add", "1794999940000",
         {"teamId": team}), {"handoff": {"event": "requested", "team_key": team}}),
        ("eventTime as a number is read too", event("Ticket_Update", 1794999945000,
         {"assigneeId": agent}, {"assigneeId": None}),
         {"handoff": {"event": "accepted", "by": agent}}),
        ("no prevState: an assigned open ticket is accepted by its assignee",
         event("Ticket_Update", "1794999946000", {"assigneeId": agent}, {}, snapshot=False),
         {"handoff": {"event": "accepted", "by": agent}}),
        ("no prevState: a closed ticket completes",
         event("Ticket_Update", "1794999947000", {**closed, "assigneeId": agent}, {},
               snapshot=False),
         {"handoff": {"event": "completed"}}),
    ]  # fmt: skip
    cases = []
    for name, ev, expected in rows:
        body = body_of([ev])
        event_id = f"{ev['eventType']}:{ticket}:{ev['eventTime']}"
        cases.append(Case(f"zohodesk: {name}", ZDK_SRC, ZD_TOKEN, headers, body, True,
                          [event_id], [intent(ticket, int(ev["eventTime"]), **expected)],
                          extra={"url": ZDK_URL}))  # fmt: skip
    ignored = [
        ("a status named Closed of statusType Open does not complete",
         event("Ticket_Update", "1794999948000",
               {"status": "Closed", "statusType": "Open", "assigneeId": agent},
               {"status": "Escalated"})),
        ("no prevState: an unassigned ticket with a team is not requested again",
         event("Ticket_Update", "1794999949000", {"teamId": team}, {}, snapshot=False)),
    ]  # fmt: skip
    for name, ev in ignored:
        body = body_of([ev])
        cases.append(Case(f"zohodesk: {name}", ZDK_SRC, ZD_TOKEN, headers, body, True,
                          [f"{ev['eventType']}:{ticket}:{ev['eventTime']}"], [],
                          extra={"url": ZDK_URL}))  # fmt: skip
    thread = {"eventType": "Ticket_Thread_Add", "eventTime": "1794999949500", "orgId": "55306166",
              "payload": {"id": "1892000000094001", "ticketId": ticket, "direction": "in",
                          "channel": "EMAIL", "summary": "Any news?"}}  # fmt: skip
    cases.append(Case("zohodesk: a Ticket_Thread_Add (payload: the thread) is ignored",
                      ZDK_SRC, ZD_TOKEN, headers, body_of([thread]), True,
                      ["Ticket_Thread_Add:1892000000094001:1794999949500"], [],
                      extra={"url": ZDK_URL}))  # fmt: skip
    other = event("Ticket_Update", "1794999950000", {"assigneeId": agent, "priority": "High"},
                  {"priority": "Medium"})  # fmt: skip
    two = body_of([rows[0][1], other])
    cases.append(Case("zohodesk: two events in one request, another field changed is ignored",
                      ZDK_SRC, ZD_TOKEN, headers, two, True,
                      [f"Ticket_Update:{ticket}:1794999900000", f"Ticket_Update:{ticket}:1794999950000"],
                      [intent(ticket, 1794999900000, handoff={"event": "accepted", "by": agent})],
                      extra={"url": ZDK_URL}))  # fmt: skip
    cases.append(Case("zohodesk: a wrong token in the URL", ZDK_SRC, ZD_TOKEN, headers,
                      cases[0].body, False, extra={"url": URL + "zohodesk?token=guessed"}))  # fmt: skip
    return cases


BUILDERS: dict[str, Callable[[], list[Case]]] = {
    "standard": lambda: standard() + standard_more(),
    "zendesk": lambda: zendesk() + zendesk_more(),
    "intercom": lambda: intercom() + intercom_more() + intercom_tickets() + intercom_ticket_parts(),
    "hubspot": lambda: hubspot() + hubspot_more() + hubspot_tickets() + hubspot_ticket_stages(),
    "front": lambda: front() + front_more(),
    "freshdesk": lambda: freshdesk() + freshdesk_more(),
    "helpscout": lambda: helpscout() + helpscout_more(),
    "generic": lambda: generic() + generic_slack(),
    "salesforce": salesforce,
    "twilio": twilio,
    "livechat": livechat,
    "freshchat": freshchat,
    "crisp": crisp,
    "gorgias": gorgias,
    "kustomer": kustomer,
    "zohodesk": zohodesk,
}


def documents() -> dict[str, str]:
    """File name → the exact text the script writes."""
    out = {}
    for kind in KINDS:
        doc = {"kind": kind, "cases": [c.to_json() for c in BUILDERS[kind]()]}
        out[f"{kind}.json"] = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    stale = []
    for name, text in documents().items():
        path = HERE / name
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python -m tests.vectors.make_vectors)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
