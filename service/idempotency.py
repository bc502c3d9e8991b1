"""`Idempotency-Key` on the calls that create something (`POST /v1/jobs`, `POST …/commit`).

Stripe's semantics: a client that retries a call with the key it used before gets the first
answer again (same status, same JSON body, header `Idempotency-Replayed: true`) and nothing runs
twice; the same key with another body is `409 idempotency_conflict`.

- A key belongs to the caller's tenant and to the concrete route (method and path, so a commit's
  key is per job): another tenant's same key is another key.
- Bodies are compared by the SHA-256 of their canonical JSON (keys sorted, no whitespace, `5.0`
  the same number as `5`), so a re-serialised body is the same body.
- Only a success (2xx) is kept: a first attempt that failed (4xx/5xx) is not, so its retry runs
  anew and can succeed.
- Two requests with the same key at once never both run: the second waits for the first, then
  answers its kept answer (or runs itself, if the first failed).
- Kept answers live in SQLite (they survive a restart) for `DOCKYARD_IDEMPOTENCY_TTL_S`, then the
  reaper's pass forgets them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from service.errors import IdempotencyConflict, InvalidRequest
from service.store import Store, StoredAnswer, now

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotency-Replayed"
MAX_KEY_CHARS = 255
# The keys check_key accepts, in JSON Schema's words (the OpenAPI document's header parameter).
KEY_SCHEMA: dict[str, object] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_CHARS,
    "pattern": "^[!-~]([ -~]*[!-~])?$",
}
DESCRIPTION = (
    "A client-chosen key (1-255 printable ASCII characters, e.g. a UUID) that makes a retry safe: "
    "the same key with the same body answers the first successful answer again (header "
    "`Idempotency-Replayed: true`) without running twice; with another body it is "
    "`409 idempotency_conflict`. Per tenant and route; kept for DOCKYARD_IDEMPOTENCY_TTL_S."
)


def check_key(value: str) -> str:
    """The key as given, or `400 invalid_request`: empty, over 255 characters, or not printable
    ASCII (a header value carries no more than that safely)."""
    problem = None
    if not value:
        problem = "is empty"
    elif len(value) > MAX_KEY_CHARS:
        problem = f"is {len(value)} characters long; at most {MAX_KEY_CHARS}"
    elif not all(" " <= c <= "~" for c in value) or value != value.strip():
        problem = "must be printable ASCII without leading or trailing spaces"
    if problem is not None:
        details = {"header": HEADER, "max_length": MAX_KEY_CHARS}
        raise InvalidRequest(f"the {HEADER} header {problem}", details)
    return value


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() else value


def body_digest(raw: bytes) -> str | None:
    """SHA-256 of the body's canonical JSON (an empty body is `{}`); None when it is not JSON at
    all (the handler refuses it with its own 400, and nothing is kept)."""
    try:
        data: Any = json.loads(raw, parse_float=_number) if raw.strip() else {}
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (ValueError, RecursionError):
        return None
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class Idempotency:
    """Kept answers (in the store) and one lock per key in use (in memory: one process owns the
    state dir)."""

    def __init__(self, store: Store, ttl_s: float):
        self.store = store
        self.ttl_s = ttl_s
        self._slots: dict[tuple[str, str, str], _Slot] = {}

    @asynccontextmanager
    async def hold(self, scope: str, route: str, key: str) -> AsyncIterator[None]:
        """Run one request of this key at a time; the slot goes once nobody holds or waits."""
        ident = (scope, route, key)
        slot = self._slots.setdefault(ident, _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                yield
        finally:
            slot.users -= 1
            if not slot.users:
                del self._slots[ident]

    async def replay(self, scope: str, route: str, key: str, digest: str) -> StoredAnswer | None:
        """The kept answer for this key and body; None when there is none (or it expired);
        `409 idempotency_conflict` when the key was first used with another body."""
        stored = await self.store.idempotent_answer(scope, route, key)
        if stored is None:
            return None
        if stored.body_sha256 != digest:
            raise IdempotencyConflict(
                f"this {HEADER} was used before with another body on {route}; use a new key for a "
                "new request",
                {"header": HEADER, "expires_at": stored.expires_at.isoformat().replace("+00:00", "Z")},
            )
        return stored

    async def keep(
        self, scope: str, route: str, key: str, digest: str, status: int, content_type: str, body: bytes
    ) -> None:
        expires = now() + timedelta(seconds=self.ttl_s)
        await self.store.keep_idempotent_answer(
            scope, route, key, StoredAnswer(digest, status, content_type, body, expires)
        )
