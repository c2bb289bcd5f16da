"""What a request must prove, for the generic kind: a signature over a template of its parts,
or a shared secret it carries. Every check compares in constant time; every failure is a
SignatureError (401) that names the header or parameter, never a value.

Signatures: HMAC (sha1, sha256, sha512) keyed with the secret, or a public key (Ed25519,
RSA-SHA256 PKCS#1 v1.5; the secret is the PEM), hex or base64, read from a header that may
carry a prefix or a `t=…,v1=…` list, over the `signed` template of `{body}`, `{timestamp}`,
`{method}`, `{url}` (the full URL the sender called) and `{params}` (the form parameters
sorted by name, each name then its value, as Twilio signs them).
Secrets: basic auth (`user:password`), a bearer token, a header, a query parameter, or a body
field (a JMESPath on the parsed body).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from bridge.errors import SignatureError
from bridge.providers.base import (
    WebhookRequest,
    require_header,
    same,
    signed_epoch,
    signed_iso_time,
)

PLACEHOLDER = re.compile(r"\{([a-z_]*)\}")
PARTS = ("body", "timestamp", "method", "url", "params")
HMACS = ("sha1", "sha256", "sha512")
PUBLIC_KEYS = ("ed25519", "rsa-sha256")


def header_list(value: str) -> dict[str, list[str]]:
    """`t=1492774577,v1=5257a8…,v0=6ffb…` as {"t": [...], "v1": [...], "v0": [...]}."""
    out: dict[str, list[str]] = {}
    for item in value.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            out.setdefault(key.strip(), []).append(val.strip())
    return out


def sorted_params(body: bytes) -> str:
    """Form parameters sorted by name (then value), each name followed by its value."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise SignatureError("the form body cannot be read for the signature") from None
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    return "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))


def signed_bytes(template: str, request: WebhookRequest, url: str, timestamp: str) -> bytes:
    """The `signed` template filled in from the request (the body as its raw bytes)."""
    out = bytearray()
    at = 0
    for m in PLACEHOLDER.finditer(template):
        out += template[at : m.start()].encode()
        part = m.group(1)
        if part == "body":
            out += request.body
        elif part == "timestamp":
            out += timestamp.encode()
        elif part == "method":
            out += request.method.upper().encode()
        elif part == "url":
            out += url.encode()
        else:  # params (the template was checked at start-up)
            out += sorted_params(request.body).encode()
        at = m.end()
    out += template[at:].encode()
    return bytes(out)


def decode_signature(text: str, encoding: str) -> bytes | None:
    try:
        if encoding == "hex":
            return bytes.fromhex(text)
        return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        return None


@functools.lru_cache(maxsize=32)
def public_key(pem: str) -> Any:
    """The secret as a public key; a value that is not one is a 401 naming the variable's
    role, never its content."""
    try:
        return serialization.load_pem_public_key(pem.replace("\\n", "\n").encode())
    except (ValueError, TypeError):
        raise SignatureError("the source's secret is not a PEM public key") from None


def signature_matches(
    algorithm: str, secret: str, message: bytes, given: list[bytes], encoding: str
) -> bool:
    if algorithm in HMACS:
        digest = hmac.new(secret.encode(), message, algorithm).digest()
        matched = False
        for g in given:  # every candidate is compared: the time does not tell which matched
            matched |= same(digest, g)
        return matched
    key = public_key(secret)
    for g in given:
        try:
            if algorithm == "ed25519" and isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(g, message)
                return True
            if algorithm == "rsa-sha256" and isinstance(key, rsa.RSAPublicKey):
                key.verify(g, message, padding.PKCS1v15(), hashes.SHA256())
                return True
        except InvalidSignature:
            continue
    return False


def read_timestamp(
    request: WebhookRequest, header: str, listed: Mapping[str, list[str]] | None, key: str | None,
    unit: str,
) -> tuple[str, float]:  # fmt: skip
    """The signed time as sent and in epoch seconds: from its own header, or from a key of
    the signature header's list."""
    if key is not None and listed is not None:
        values = listed.get(key)
        if not values:
            raise SignatureError(f"{header}: no {key}= timestamp")
        text = values[0]
        if not re.fullmatch(r"[0-9]{1,16}", text):
            raise SignatureError(f"{header}: {key}= expected epoch digits")
        return text, int(text) / (1000 if unit == "ms" else 1)
    if unit == "iso":
        return signed_iso_time(request, header)
    return signed_epoch(request, header, milliseconds=unit == "ms")


def basic_auth(request: WebhookRequest, secret: str) -> None:
    given = require_header(request, "authorization")
    scheme, _, value = given.strip().partition(" ")
    if scheme.lower() != "basic":
        raise SignatureError("authorization: expected Basic credentials")
    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (ValueError, binascii.Error):
        raise SignatureError("authorization: Basic credentials are not base64") from None
    if not same(secret.encode(), decoded):
        raise SignatureError("authorization: the credentials do not match")


def bearer(request: WebhookRequest, secret: str) -> None:
    given = require_header(request, "authorization")
    scheme, _, value = given.strip().partition(" ")
    if scheme.lower() != "bearer" or not same(secret, value.strip()):
        raise SignatureError("authorization: the bearer token does not match")


def query_token(request: WebhookRequest, name: str, secret: str) -> None:
    values = [v for k, v in parse_qsl(urlsplit(request.url).query) if k == name]
    if len(values) != 1 or not same(secret, values[0]):
        raise SignatureError(f"query parameter {name} does not match")
