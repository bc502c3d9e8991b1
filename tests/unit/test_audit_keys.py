"""The keyed audit chain: a full rewrite of the state dir (every hash and anchor recomputed) fails
`verify` with the key; rotation and removal of the key are records of the chain itself."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from service.audit import GENESIS, Actor, AuditEntry, AuditKeys, AuditRecord, chain_hash, iter_rows, verify_rows
from service.settings import ConfigError, Settings
from service.store import Store

BOT = Actor("bot-1", "bot", "team-a")
KEY1 = b"k1-" + b"a" * 40
KEY2 = b"k2-" + b"b" * 40


async def _write(state: Path, keys: AuditKeys | None, n: int = 3) -> None:
    store = await Store.open(state, keys)
    try:
        await store.note_audit_key()
        for i in range(n):
            await store.audit(AuditEntry(actor=BOT, action="tool.write_file", outcome="ok", argv=["w", str(i)]))
    finally:
        await store.close()


def _rows(state: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(state / "dockyard.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return list(iter_rows(conn))
    finally:
        conn.close()


def _rewrite(state: Path, *, strip_macs: bool = False) -> None:
    """What an attacker with write access to the state dir but not the key can do: change a
    record and recompute every hash after it, so the plain chain is valid again."""
    conn = sqlite3.connect(state / "dockyard.sqlite3")
    conn.row_factory = sqlite3.Row
    prev = GENESIS
    for row in list(iter_rows(conn)):
        rec = AuditRecord.from_row(dict(row))
        if rec.seq == 2:
            rec = replace(rec, argv=["w", "innocent"])
        rec = replace(rec, prev_hash=prev)
        rec = rec.with_hash(chain_hash(rec))
        mac = None if strip_macs else rec.mac
        kid = None if strip_macs else rec.key_id
        conn.execute(
            "UPDATE audit SET argv = ?, prev_hash = ?, hash = ?, mac = ?, key_id = ? WHERE seq = ?",
            (json.dumps(rec.argv), rec.prev_hash, rec.hash, mac, kid, rec.seq),
        )
        prev = rec.hash
    conn.commit()
    conn.close()


async def test_a_full_rewrite_passes_the_plain_chain_but_not_the_key(tmp_path: Path) -> None:
    keys = AuditKeys.of([KEY1])
    await _write(tmp_path, keys)
    rows = _rows(tmp_path)
    assert rows[0]["action"] == "audit.key" and rows[0]["outcome"] == "keyed"
    assert all(r["key_id"] == keys.current_id and r["mac"] for r in rows)
    good = verify_rows(rows, keys=keys)
    assert good.ok and good.keyed and good.records == 4
    _rewrite(tmp_path)
    assert verify_rows(_rows(tmp_path)).ok  # without the key the rewrite is invisible
    bad = verify_rows(_rows(tmp_path), keys=keys)
    assert not bad.ok and bad.first_bad_seq == 2 and "authentication code" in (bad.reason or "")


async def test_stripping_the_macs_is_caught(tmp_path: Path) -> None:
    keys = AuditKeys.of([KEY1])
    await _write(tmp_path, keys)
    _rewrite(tmp_path, strip_macs=True)
    bad = verify_rows(_rows(tmp_path), keys=keys)
    assert not bad.ok and "no record is authenticated" in (bad.reason or "")


async def test_rotation_and_removal_are_recorded_and_verify(tmp_path: Path) -> None:
    await _write(tmp_path, AuditKeys.of([KEY1]))
    await _write(tmp_path, AuditKeys.of([KEY2, KEY1]))  # rotated: the old key stays for verifying
    rows = _rows(tmp_path)
    rotation = [r for r in rows if r["action"] == "audit.key"]
    assert [r["outcome"] for r in rotation] == ["keyed", "rotated"]
    assert json.loads(str(rotation[1]["details"]))["previous_key_id"] == AuditKeys.of([KEY1]).current_id
    assert verify_rows(rows, keys=AuditKeys.of([KEY2, KEY1])).ok
    only_new = verify_rows(rows, keys=AuditKeys.of([KEY2]))
    assert not only_new.ok and "not one given" in (only_new.reason or "")
    # Dropping the key is a record too, and a later unkeyed record is a break for the key holder.
    await _write(tmp_path, None, n=1)
    rows = _rows(tmp_path)
    assert rows[-2]["action"] == "audit.key" and rows[-2]["outcome"] == "unkeyed"
    assert verify_rows(rows).ok
    assert not verify_rows(rows, keys=AuditKeys.of([KEY2, KEY1])).ok


def test_key_file_must_live_outside_the_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    inside = state / "audit.key"
    inside.write_text("x" * 40 + "\n")
    with pytest.raises(ConfigError, match="outside DOCKYARD_STATE_DIR"):
        Settings(state_dir=state, audit_key_file=inside).audit_keys()
    outside = tmp_path / "audit.key"
    outside.write_text("# current first\n" + "y" * 40 + "\n" + "x" * 40 + "\n")
    keys = Settings(state_dir=state, audit_key_file=outside).audit_keys()
    assert keys is not None and keys.current == b"y" * 40 and len(keys.known) == 2
    outside.write_text("short\n")
    with pytest.raises(ConfigError, match="at least 32"):
        Settings(state_dir=state, audit_key_file=outside).audit_keys()
