"""The chain verifier (altered, missing, re-hashed, truncated-with-anchor) and the outcome trail
(idempotent, a git failure never raises) without an engine."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from service.audit import Actor, AuditEntry, AuditRecord, ChainVerifier, chain_hash, iter_rows, verify_rows
from service.store import JobRecord, Store
from service.trail import OutcomeTrail, read_anchors

BOT = Actor("bot-1", "bot")


async def _store_with(tmp_path: Path, n: int) -> Store:
    store = await Store.open(tmp_path)
    for i in range(n):
        await store.audit(AuditEntry(actor=BOT, action="tool.read_file", outcome="ok", argv=["x", str(i)]))
    return store


def _rows(tmp_path: Path) -> list[dict[str, object]]:
    conn = sqlite3.connect(tmp_path / "dockyard.sqlite3")
    conn.row_factory = sqlite3.Row
    try:
        return list(iter_rows(conn, batch=3))
    finally:
        conn.close()


async def test_verifier_names_the_first_bad_record(tmp_path: Path) -> None:
    store = await _store_with(tmp_path, 6)
    await store.close()
    rows = _rows(tmp_path)
    assert verify_rows(rows).ok and verify_rows(rows).records == 6

    altered = [dict(r) for r in rows]
    altered[2]["argv"] = json.dumps(["x", "evil"])
    assert verify_rows(altered).first_bad_seq == 3

    missing = rows[:3] + rows[4:]
    res = verify_rows(missing)
    assert (res.ok, res.first_bad_seq, res.records) == (False, 4, 3)

    # Record 3 changed AND re-hashed: its own hash checks, the next link does not.
    rec = AuditRecord.from_row(dict(rows[2]))
    forged = AuditRecord(**{**rec.__dict__, "argv": ["x", "evil"], "hash": ""})
    rehashed = [dict(r) for r in rows]
    rehashed[2] = {**rehashed[2], "argv": json.dumps(["x", "evil"]), "hash": chain_hash(forged)}
    assert verify_rows(rehashed).first_bad_seq == 4

    broken_json = [dict(r) for r in rows]
    broken_json[1]["details"] = "{not json"
    assert verify_rows(broken_json).first_bad_seq == 2

    # A truncated tail is a valid chain; an anchor beyond it is not.
    anchors = {6: str(rows[5]["hash"])}
    assert verify_rows(rows, anchors).ok
    res = verify_rows(rows[:4], anchors)
    assert (res.ok, res.first_bad_seq) == (False, 5)
    assert not verify_rows(rows, {6: "0" * 64}).ok


def test_empty_log_is_ok() -> None:
    res = ChainVerifier().result()
    assert res.ok and res.records == 0 and res.head_seq is None


def _job(job_id: str, status: str) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        id=job_id,
        status=status,
        limits={"memory_mb": 64},
        labels={"bug": "1"},
        created_at=now,
        expires_at=now + timedelta(hours=1),
        clone_url="file:///x",
        base_sha="a" * 40,
    )


async def test_outcome_is_committed_once(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        await store.insert_job(_job("job_1", "ready"))
        await store.audit(AuditEntry(actor=BOT, action="tool.write_file", outcome="ok", job_id="job_1"))
        await store.update_job(
            "job_1",
            audit=AuditEntry(actor=BOT, action="job.delete", outcome="ok", job_id="job_1"),
            status="destroyed",
        )
        trail = OutcomeTrail(tmp_path / "trail", store)
        await trail.start()
        assert await trail.record("job_1") == "committed"
        assert await trail.record("job_1") == "unchanged"
        # Records after the end (an auditor reading the saved log) do not change the outcome.
        await store.audit(AuditEntry(actor=BOT, action="job.logs", outcome="ok", job_id="job_1"))
        assert await trail.record("job_1") == "unchanged"
        count = subprocess.run(  # noqa: ASYNC221 - a test reading the result, nothing else runs
            ["git", "-C", str(tmp_path / "trail"), "rev-list", "--count", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert count == "1"
        body = json.loads((tmp_path / "trail" / "jobs" / "job_1.json").read_text())
        assert body["ended"]["how"] == "deleted" and body["audit"]["records"] == 2
        assert read_anchors(tmp_path / "trail") == {body["audit"]["last_seq"]: body["audit"]["head_hash"]}
        assert await trail.record("job_unknown") == "skipped"
    finally:
        await store.close()


async def test_git_failure_is_logged_never_raised(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    try:
        await store.insert_job(_job("job_2", "failed"))
        blocked = tmp_path / "trail"
        blocked.write_text("a file where the repository should be")
        trail = OutcomeTrail(blocked, store)
        await trail.start()
        assert await trail.record("job_2") == "failed"
    finally:
        await store.close()
