"""Request body formats as the one tree a kind reads: strict JSON (and, for the generic kind,
form and XML bodies). Every refusal is a PayloadError naming what is wrong."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import orjson
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as xml_fromstring

from bridge.errors import PayloadError, UnsupportedMedia

MAX_NUMBER = 2**63  # "absurd numbers": integers beyond 64 bits, floats beyond this magnitude


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def is_json(content_type: str) -> bool:
    media = media_type(content_type)
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def require_json(content_type: str) -> None:
    """For kinds whose senders always send JSON: anything else is a 415."""
    if not is_json(content_type):
        raise UnsupportedMedia("expected Content-Type: application/json")


def parse_json(body: bytes) -> Any:
    """Strict JSON: valid UTF-8, no NaN/Infinity, no absurd numbers."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"body is not valid JSON: {str(exc).split(':')[0]}") from None
    _check_numbers(payload, "")
    return payload


def _check_numbers(value: Any, path: str) -> None:
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float):
            if item != item or abs(item) >= MAX_NUMBER:
                raise PayloadError(f"{where or 'body'}: number out of range")
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) >= MAX_NUMBER:
                raise PayloadError(f"{where or 'body'}: number out of range")
        elif isinstance(item, dict):
            stack.extend((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))


FORM = "application/x-www-form-urlencoded"
XML_TYPES = ("text/xml", "application/xml", "application/soap+xml")
MAX_XML_DEPTH = 64


def is_form(content_type: str) -> bool:
    return media_type(content_type) == FORM


def is_xml(content_type: str) -> bool:
    media = media_type(content_type)
    return media in XML_TYPES or (media.startswith("application/") and media.endswith("+xml"))


def parse_form(body: bytes) -> dict[str, Any]:
    """application/x-www-form-urlencoded as {name: value}, a repeated name as a list."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except UnicodeDecodeError:
        raise PayloadError("body is not valid UTF-8") from None
    except ValueError:
        raise PayloadError("body is not a valid form (name=value&…)") from None
    out: dict[str, Any] = {}
    for name, value in pairs:
        _add(out, name, value)
    return out


def _add(out: dict[str, Any], name: str, value: Any) -> None:
    """`out[name] = value`; a repeated name becomes a list of its values, in order."""
    if name in out:
        held = out[name]
        out[name] = [*held, value] if isinstance(held, list) else [held, value]
    else:
        out[name] = value


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # {namespace}name → name: SOAP reads without prefixes


def parse_xml(body: bytes) -> dict[str, Any]:
    """XML (SOAP included) as one tree: {root: …}; an element with neither children nor
    attributes is its text, others an object (attributes as `@name`, text as `#text`), a
    repeated child a list; namespaces dropped. No DTDs (no entity expansion), depth ≤ 64."""
    try:
        root = xml_fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise PayloadError("body: XML with a DOCTYPE or entities is not accepted") from None
    except ElementTree.ParseError as exc:
        raise PayloadError(f"body is not valid XML: {str(exc).split(':')[0]}") from None
    return {_local(root.tag): _element(root, 1)}


def _element(el: ElementTree.Element, depth: int) -> Any:
    if depth > MAX_XML_DEPTH:
        raise PayloadError(f"body: XML nested deeper than {MAX_XML_DEPTH} levels")
    children = list(el)
    text = (el.text or "").strip()
    if not children and not el.attrib:
        return text
    out: dict[str, Any] = {f"@{_local(k)}": v for k, v in el.attrib.items()}
    if text:
        out["#text"] = text
    for child in children:
        _add(out, _local(child.tag), _element(child, depth + 1))
    return out
