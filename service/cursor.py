"""Opaque, signed page cursors for `GET /v1/jobs` (`cursor` in, `next_cursor` out).

A cursor is the position after the last job of a page in the listing's stable order
(`created_at`, `id`, newest first) plus a digest of the query it belongs to, signed with a key
kept in the state (so cursors survive a restart). A cursor that does not decode, was altered, or
comes from a query with other filters is `400 invalid_request` (the same filters must be sent
with every page; `limit` may change). It carries no tenant: whose jobs a page shows is decided
by the caller's token on every page, never by the cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from service.errors import InvalidRequest

KEY_NAME = "jobs-cursor"
_MAC_BYTES = 16
MAX_CURSOR_CHARS = 512


@dataclass(frozen=True)
class Position:
    """The last job a page showed: the next page starts after it."""

    created_at: datetime
    job_id: str


def query_digest(filters: dict[str, Any]) -> str:
    canonical = json.dumps(filters, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(key: bytes, position: Position, filters: dict[str, Any]) -> str:
    payload = json.dumps(
        {"at": position.created_at.isoformat(), "id": position.job_id, "q": query_digest(filters)},
        separators=(",", ":"),
    ).encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def _refuse(why: str) -> InvalidRequest:
    return InvalidRequest(
        f"invalid query: cursor {why}; send a next_cursor exactly as a previous page gave it, with the "
        "same filters",
        {"param": "cursor"},
    )


def decode(key: bytes, cursor: str, filters: dict[str, Any]) -> Position:
    try:
        body, _, sig = cursor.partition(".")
        payload, mac = _unb64(body), _unb64(sig)
    except (binascii.Error, ValueError):
        raise _refuse("is malformed") from None
    if not sig or not hmac.compare_digest(mac, hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]):
        raise _refuse("is not one this service gave (malformed or altered)")
    try:
        data = json.loads(payload)
        position = Position(datetime.fromisoformat(data["at"]), str(data["id"]))
        digest = str(data["q"])
    except (ValueError, KeyError, TypeError):
        raise _refuse("is malformed") from None
    if digest != query_digest(filters):
        raise _refuse("belongs to a listing with other filters")
    return position
