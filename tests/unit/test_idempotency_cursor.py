"""Pieces of idempotency and paging that need no engine: key checks, the canonical body digest,
kept answers expiring and being swept, cursors refusing alteration, sessions ending with their
token, and the OpenAPI document naming the header."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service import cursor, idempotency
from service.api.middleware import TokenTable
from service.api.routing import openapi
from service.app import routes
from service.audit import Actor
from service.console.sessions import Sessions
from service.errors import IdempotencyConflict, InvalidRequest
from service.settings import TokenInfo
from service.store import Store, StoredAnswer, now


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", "new\nline", " lead"])
def test_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        idempotency.check_key(key)
    assert e.value.details["header"] == "Idempotency-Key"


def test_a_uuid_and_255_printable_characters_are_keys() -> None:
    assert idempotency.check_key("8e6d0a4c-2f0b-4a53-9c55-1f5b1a3a7d21")
    assert idempotency.check_key("~" * 255)


def test_the_digest_is_of_the_json_not_its_bytes() -> None:
    a = idempotency.body_digest(b'{"repo": "o/r", "limits": {"cpus": 1.0, "pids": 64}}')
    b = idempotency.body_digest(b'{"limits":{"pids":64,"cpus":1},"repo":"o/r"}')
    assert a is not None and a == b
    assert idempotency.body_digest(b'{"repo": "o/other"}') != a
    assert idempotency.body_digest(b"") == idempotency.body_digest(b"{}")
    assert idempotency.body_digest(b"{not json") is None


def test_kept_answers_replay_conflict_expire_and_are_swept(tmp_path: Path) -> None:
    async def go() -> None:
        store = await Store.open(tmp_path)
        try:
            keys = idempotency.Idempotency(store, ttl_s=3600)
            await keys.keep("team-a", "POST /v1/jobs", "k1", "d1", 201, "application/json", b'{"id": 1}')
            stored = await keys.replay("team-a", "POST /v1/jobs", "k1", "d1")
            assert stored is not None and (stored.status, stored.body) == (201, b'{"id": 1}')
            with pytest.raises(IdempotencyConflict):
                await keys.replay("team-a", "POST /v1/jobs", "k1", "other body")
            assert await keys.replay("team-b", "POST /v1/jobs", "k1", "d1") is None  # another tenant
            assert await keys.replay("team-a", "POST /v1/jobs/x/commit", "k1", "d1") is None  # another route
            past = StoredAnswer("d2", 201, "application/json", b"{}", now() - timedelta(seconds=1))
            await store.keep_idempotent_answer("team-a", "POST /v1/jobs", "old", past)
            assert await keys.replay("team-a", "POST /v1/jobs", "old", "d2") is None  # expired: as none
            assert await store.sweep_idempotency() == 1
            assert await keys.replay("team-a", "POST /v1/jobs", "k1", "d1") is not None
        finally:
            await store.close()

    asyncio.run(go())


def test_one_request_per_key_at_a_time() -> None:
    async def go() -> list[str]:
        keys = idempotency.Idempotency(None, 1)  # type: ignore[arg-type]  # hold() needs no store
        order: list[str] = []

        async def one(name: str) -> None:
            async with keys.hold("t", "r", "k"):
                order.append(f"{name}+")
                await asyncio.sleep(0.01)
                order.append(f"{name}-")

        await asyncio.gather(one("a"), one("b"))
        assert not keys._slots  # nothing left behind
        return order

    assert asyncio.run(go()) == ["a+", "a-", "b+", "b-"]


KEY = b"k" * 32
FILTERS = {"status": ["ready"], "label": [], "tenant": None}


def test_cursor_round_trip_and_refusals() -> None:
    at = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
    c = cursor.encode(KEY, cursor.Position(at, "job_abc"), FILTERS)
    assert cursor.decode(KEY, c, FILTERS) == cursor.Position(at, "job_abc")
    with pytest.raises(InvalidRequest, match="other filters"):
        cursor.decode(KEY, c, {**FILTERS, "status": None})
    with pytest.raises(InvalidRequest, match="not one this service gave"):
        cursor.decode(b"another key" * 3, c, FILTERS)
    body, _, mac = c.partition(".")
    forged = cursor._b64(b'{"at":"2030-01-01T00:00:00+00:00","id":"job_zzz","q":"x"}')
    for bad in ("", "abc", f"{forged}.{mac}", f"{body}.", "!!!.???"):
        with pytest.raises(InvalidRequest):
            cursor.decode(KEY, bad, FILTERS)


def test_sessions_of_a_removed_token_end_on_reload() -> None:
    table = TokenTable({"a" * 20: TokenInfo("auditor", "t1"), "b" * 20: TokenInfo("auditor", "t2")})
    kept, gone = table.actor("a" * 20), table.actor("b" * 20)
    assert isinstance(kept, Actor) and isinstance(gone, Actor)
    sessions = Sessions(3600, 10)
    s_kept, s_gone = sessions.open(kept), sessions.open(gone)
    table.replace({"a" * 20: TokenInfo("auditor", "t1")})
    sessions.keep_only(table.actors())
    assert table.actor("b" * 20) is None and sessions.actor(s_gone) is None
    assert sessions.actor(s_kept) == kept


def test_openapi_declares_the_header_on_exactly_the_two_creating_routes() -> None:
    doc = openapi(routes(), title="t", version="0")
    with_header = sorted(
        (path, method)
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if any(p["in"] == "header" and p["name"] == "Idempotency-Key" for p in op.get("parameters", []))
    )
    assert with_header == [("/v1/jobs", "post"), ("/v1/jobs/{id}/commit", "post")]


@pytest.mark.parametrize("key", ["a", "a b", " a", "a ", "~" * 255, "~" * 256, "", "a\tb", "caf\u00e9"])
def test_the_header_schema_says_exactly_what_check_key_takes(key: str) -> None:
    import re

    schema = idempotency.KEY_SCHEMA
    in_schema = bool(re.match(str(schema["pattern"]), key)) and len(key) <= int(schema["maxLength"])
    try:
        idempotency.check_key(key)
        accepted = True
    except InvalidRequest:
        accepted = False
    assert in_schema == accepted
