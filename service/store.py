"""SQLite state: jobs, their events, and the audit log — one file, one connection.

Every mutation may carry an audit entry; both are written in ONE transaction, so the audit log
never says something happened that the state does not show, or the other way round.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from service.audit import SYSTEM, AuditEntry, AuditKeys, AuditRecord, chain_hash, fields_of

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    repo TEXT,
    ref TEXT,
    clone_url TEXT,
    base_sha TEXT,
    language TEXT,
    image TEXT,
    container_id TEXT,
    volume TEXT,
    limits TEXT NOT NULL,
    labels TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    error TEXT,
    commits TEXT NOT NULL DEFAULT '[]',
    actor TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status);
CREATE TABLE IF NOT EXISTS job_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    at TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events(job_id, seq);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    job_id TEXT,
    action TEXT NOT NULL,
    container_id TEXT,
    argv TEXT,
    exit_code INTEGER,
    duration_ms INTEGER,
    bytes_in INTEGER,
    bytes_out INTEGER,
    outcome TEXT NOT NULL,
    details TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_job ON audit(job_id, seq);
CREATE TABLE IF NOT EXISTS siem_cursors (
    sink TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    scope TEXT NOT NULL,
    route TEXT NOT NULL,
    key TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    status INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (scope, route, key)
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency(expires_at);
CREATE TABLE IF NOT EXISTS secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""
# Columns added after the first release: (table, column, type), added to older databases at open.
MIGRATIONS = (
    ("jobs", "tenant", "TEXT"),
    ("jobs", "env_key", "TEXT"),
    ("audit", "tenant", "TEXT"),
    ("audit", "key_id", "TEXT"),
    ("audit", "mac", "TEXT"),
    ("jobs", "kept_diff", "TEXT"),
)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS jobs_tenant ON jobs(tenant, status)",
    "CREATE INDEX IF NOT EXISTS audit_tenant ON audit(tenant, seq)",
)

LIVE_STATUSES = ("creating", "ready")
TERMINAL_STATUSES = ("destroyed", "failed")


def now() -> datetime:
    return datetime.now(UTC)


def _ts(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class JobRecord:
    id: str
    status: str
    limits: dict[str, Any]
    labels: dict[str, str]
    created_at: datetime
    expires_at: datetime
    repo: str | None = None
    ref: str | None = None
    clone_url: str | None = None
    base_sha: str | None = None
    language: str | None = None
    image: str | None = None
    container_id: str | None = None
    volume: str | None = None
    error: str | None = None
    commits: list[dict[str, str]] = field(default_factory=list)
    actor: str | None = None
    tenant: str | None = None
    env_key: str | None = None  # the dependency environment it was prepared with (service/env/)
    kept_diff: str | None = None  # the address of the diff kept when it ended (service/jobs/kept.py)

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


@dataclass(frozen=True)
class StoredAnswer:
    """The first successful answer to a request made with an Idempotency-Key (service/idempotency.py)."""

    body_sha256: str
    status: int
    content_type: str
    body: bytes
    expires_at: datetime


@dataclass(frozen=True)
class EventRecord:
    seq: int
    job_id: str
    at: datetime
    type: str
    data: dict[str, Any]


_JSON_FIELDS = {"limits", "labels", "commits"}
_TIME_FIELDS = {"created_at", "expires_at"}


def _row_to_job(row: aiosqlite.Row) -> JobRecord:
    values: dict[str, Any] = {}
    for key in row.keys():
        if key == "updated_at":
            continue
        v = row[key]
        if key in _JSON_FIELDS:
            v = json.loads(v)
        elif key in _TIME_FIELDS:
            v = _dt(v)
        values[key] = v
    return JobRecord(**values)


def _to_column(key: str, value: Any) -> Any:
    if key in _JSON_FIELDS:
        return json.dumps(value, sort_keys=True)
    if key in _TIME_FIELDS:
        return _ts(value)
    return value


JOB_CACHE = 4096  # job records kept in memory (read-through, dropped on write)


class Store:
    def __init__(self, db: aiosqlite.Connection, keys: AuditKeys | None = None):
        self._db = db
        self._jobs: OrderedDict[str, JobRecord] = OrderedDict()
        self._head: tuple[int, str] | None = None  # the audit chain's last (seq, hash)
        self._secrets: dict[str, bytes] = {}
        self._job_writes = 0
        self.keys = keys  # authenticate every new audit record (None: the chain is unkeyed)
        # One connection: writes are serialised so no statement lands inside another's transaction.
        self._write_lock = asyncio.Lock()
        # Called with each audit record once its transaction has committed (metrics, SIEM delivery).
        self.on_audit: list[Callable[[AuditRecord], None]] = []

    @classmethod
    async def open(cls, state_dir: Path, keys: AuditKeys | None = None) -> Store:
        await asyncio.to_thread(state_dir.mkdir, parents=True, exist_ok=True)
        db = await aiosqlite.connect(state_dir / "dockyard.sqlite3", isolation_level=None)
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        await db.executescript(SCHEMA)
        for table, column, kind in MIGRATIONS:
            async with db.execute(f"PRAGMA table_info({table})") as cur:
                have = {row["name"] async for row in cur}
            if column not in have:
                await db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        for sql in INDEXES:
            await db.execute(sql)
        return cls(db, keys)

    async def close(self) -> None:
        await self._db.close()

    # --- the one write path --------------------------------------------------------------------

    async def _write(
        self,
        statements: Sequence[tuple[str, Sequence[Any]]],
        audit: AuditEntry | None,
        job_id: str | None = None,
    ) -> int | None:
        """One transaction: the statements and the audit record. `job_id`: the job row they change
        (its cached copy is dropped). Returns the row id the last statement inserted."""
        record: AuditRecord | None = None
        rowid: int | None = None
        async with self._write_lock:
            if job_id is not None:
                self._jobs.pop(job_id, None)
                self._job_writes += 1
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in statements:
                    cur = await self._db.execute(sql, params)
                    rowid = cur.lastrowid
                if audit is not None:
                    record = await self._append_audit(audit)
                await self._db.execute("COMMIT")
            except BaseException:
                self._head = None  # the chain's head is read again after a rollback
                await self._db.execute("ROLLBACK")
                raise
            if record is not None:
                self._head = (record.seq, record.hash)
        if record is not None:
            for hook in self.on_audit:
                hook(record)
        return rowid

    async def _append_audit(self, entry: AuditEntry) -> AuditRecord:
        if self._head is None:  # we are the only writer: the head is read once, then kept
            rows = await self._db.execute_fetchall("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
            last = next(iter(rows), None)
            self._head = (last["seq"], last["hash"]) if last else (0, "0" * 64)
        seq, prev = self._head[0] + 1, self._head[1]
        if entry.tenant is None and not entry.actor.tenant and entry.job_id:
            # A system action on a job (reap, reconcile) belongs to the job's tenant.
            async with self._db.execute("SELECT tenant FROM jobs WHERE id = ?", (entry.job_id,)) as cur:
                row = await cur.fetchone()
            if row is not None and row["tenant"]:
                entry = replace(entry, tenant=row["tenant"])
        record = AuditRecord.from_entry(entry, seq=seq, at=_ts(now()), prev_hash=prev)
        record = record.with_hash(chain_hash(record)).signed(self.keys)
        cols = fields_of(record)
        cols["argv"] = json.dumps(cols["argv"]) if cols["argv"] is not None else None
        cols["details"] = json.dumps(cols["details"], sort_keys=True)
        names = ", ".join(cols)
        marks = ", ".join("?" for _ in cols)
        await self._db.execute(f"INSERT INTO audit ({names}) VALUES ({marks})", list(cols.values()))
        return record

    # --- jobs ----------------------------------------------------------------------------------

    async def insert_job(self, job: JobRecord, audit: AuditEntry | None = None) -> None:
        cols = {k: _to_column(k, v) for k, v in asdict(job).items()}
        cols["updated_at"] = _ts(now())
        names = ", ".join(cols)
        marks = ", ".join("?" for _ in cols)
        await self._write(
            [(f"INSERT INTO jobs ({names}) VALUES ({marks})", list(cols.values()))], audit, job.id
        )

    async def update_job(self, job_id: str, audit: AuditEntry | None = None, **fields: Any) -> None:
        cols = {k: _to_column(k, v) for k, v in fields.items()}
        cols["updated_at"] = _ts(now())
        sets = ", ".join(f"{k} = ?" for k in cols)
        await self._write([(f"UPDATE jobs SET {sets} WHERE id = ?", [*cols.values(), job_id])], audit, job_id)

    async def audit(self, entry: AuditEntry) -> None:
        await self._write([], entry)

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job as stored. Every job row is written through this store, so what it read last
        is kept (a bounded cache, dropped on each write of that row): tool calls read their job
        twice per request, and a read is a round trip to SQLite's thread."""
        cached = self._jobs.get(job_id)
        if cached is not None:
            self._jobs.move_to_end(job_id)
            return cached
        writes = self._job_writes
        rows = await self._db.execute_fetchall("SELECT * FROM jobs WHERE id = ?", (job_id,))
        row = next(iter(rows), None)
        if row is None:
            return None
        job = _row_to_job(row)
        if writes == self._job_writes and not self._write_lock.locked():  # no write meanwhile
            self._jobs[job_id] = job
            while len(self._jobs) > JOB_CACHE:
                self._jobs.popitem(last=False)
        return job

    async def list_jobs(
        self,
        *,
        statuses: Sequence[str] | None = None,
        labels: dict[str, str] | None = None,
        tenant: str | None = None,
        limit: int = 1000,
        before: tuple[datetime, str] | None = None,
    ) -> list[JobRecord]:
        """Jobs newest first, in the stable order (created_at, id) descending; `before`: only
        those after that position in this order (a page's cursor: the last job it showed)."""
        sql = "SELECT * FROM jobs WHERE 1 = 1"
        params: list[Any] = []
        if before is not None:
            at = _ts(before[0])
            sql += " AND (created_at < ? OR (created_at = ? AND id < ?))"
            params.extend([at, at, before[1]])
        if statuses:
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params.extend(statuses)
        if tenant is not None:
            sql += " AND tenant = ?"
            params.append(tenant)
        sql += " ORDER BY created_at DESC, id DESC"
        jobs = []
        writes = self._job_writes
        async with self._db.execute(sql, params) as cur:
            async for row in cur:
                job = _row_to_job(row)
                if job.id in self._jobs and writes == self._job_writes:
                    # a listing refreshes what is kept: a row changed outside this store (an
                    # operator's edit) is seen at the next reaper pass at the latest
                    self._jobs[job.id] = job
                if labels and any(job.labels.get(k) != v for k, v in labels.items()):
                    continue
                jobs.append(job)
                if len(jobs) >= limit:
                    break
        return jobs

    async def count_live(self, tenant: str | None = None) -> int:
        marks = ", ".join("?" for _ in LIVE_STATUSES)
        sql = f"SELECT COUNT(*) FROM jobs WHERE status IN ({marks})"
        params: list[Any] = list(LIVE_STATUSES)
        if tenant is not None:
            sql += " AND tenant = ?"
            params.append(tenant)
        async with self._db.execute(sql, params) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def live_limits(self) -> list[dict[str, Any]]:
        """The applied limits of every live job (for host admission)."""
        marks = ", ".join("?" for _ in LIVE_STATUSES)
        sql = f"SELECT limits FROM jobs WHERE status IN ({marks})"
        async with self._db.execute(sql, LIVE_STATUSES) as cur:
            rows = await cur.fetchall()
        return [json.loads(r["limits"]) for r in rows]

    # --- events --------------------------------------------------------------------------------

    async def audit_with_event(
        self, entry: AuditEntry, job_id: str, type_: str, data: dict[str, Any]
    ) -> EventRecord:
        """An audit record and the job event it announces, in one transaction."""
        at = now()
        seq = await self._write(
            [
                (
                    "INSERT INTO job_events (job_id, at, type, data) VALUES (?, ?, ?, ?)",
                    (job_id, _ts(at), type_, json.dumps(data, sort_keys=True)),
                )
            ],
            entry,
        )
        return EventRecord(seq or 0, job_id, at, type_, data)

    async def add_event(self, job_id: str, type_: str, data: dict[str, Any]) -> EventRecord:
        at = now()
        async with self._write_lock:
            cur = await self._db.execute(
                "INSERT INTO job_events (job_id, at, type, data) VALUES (?, ?, ?, ?)",
                (job_id, _ts(at), type_, json.dumps(data, sort_keys=True)),
            )
            seq = cur.lastrowid or 0
            await cur.close()
        return EventRecord(seq, job_id, at, type_, data)

    async def list_events(
        self, job_id: str, after_seq: int = 0, *, newest: int | None = None
    ) -> list[EventRecord]:
        """The job's events after `after_seq` in seq order; `newest`: only the last that many."""
        sql = "SELECT * FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq"
        params: tuple[Any, ...] = (job_id, after_seq)
        if newest is not None:
            sql = f"SELECT * FROM ({sql} DESC LIMIT ?) ORDER BY seq"
            params = (*params, newest)
        async with self._db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [
            EventRecord(r["seq"], r["job_id"], _dt(r["at"]), r["type"], json.loads(r["data"])) for r in rows
        ]

    # --- audit reads ---------------------------------------------------------------------------

    async def audit_records(self, *, job_id: str | None = None, limit: int = 1000) -> list[AuditRecord]:
        sql = "SELECT * FROM audit"
        params: list[Any] = []
        if job_id:
            sql += " WHERE job_id = ?"
            params.append(job_id)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        async with self._db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [AuditRecord.from_row(dict(r)) for r in rows]

    async def audit_query(
        self,
        *,
        job_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tenant: str | None = None,
        path: str | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[AuditRecord]:
        """Records in seq order after `after`; `actor` matches a name or a role; `action` ending
        in `.*` (or `*`) matches a prefix (`tool.*`)."""
        sql = "SELECT * FROM audit WHERE seq > ?"
        params: list[Any] = [after]
        if job_id:
            sql += " AND job_id = ?"
            params.append(job_id)
        if actor:
            sql += " AND (actor = ? OR role = ?)"
            params += [actor, actor]
        if action:
            if action.endswith("*"):
                prefix = action.rstrip("*")
                escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                sql += " AND action LIKE ? ESCAPE '\\'"
                params.append(escaped + "%")
            else:
                sql += " AND action = ?"
                params.append(action)
        if since is not None:
            sql += " AND at >= ?"
            params.append(_ts(since))
        if until is not None:
            sql += " AND at <= ?"
            params.append(_ts(until))
        if tenant is not None:
            sql += " AND tenant = ?"
            params.append(tenant)
        if path is not None:
            sql += " AND json_extract(details, '$.path') = ?"
            params.append(path)
        sql += " ORDER BY seq LIMIT ?"
        params.append(limit)
        async with self._db.execute(sql, params) as cur:
            rows = await cur.fetchall()
        return [AuditRecord.from_row(dict(r)) for r in rows]

    async def note_audit_key(self) -> None:
        """Record in the chain itself when its key starts, changes (rotation) or goes away."""
        any_record, last = await self.last_key_id()
        current = self.keys.current_id if self.keys is not None else None
        if current == last or (current is None and not any_record):
            return
        outcome = "unkeyed" if current is None else ("rotated" if last else "keyed")
        await self.audit(
            AuditEntry(
                actor=SYSTEM,
                action="audit.key",
                outcome=outcome,
                details={"key_id": current, "previous_key_id": last},
            )
        )

    async def last_key_id(self) -> tuple[bool, str | None]:
        """(any record at all, the key id of the newest record)."""
        async with self._db.execute("SELECT key_id FROM audit ORDER BY seq DESC LIMIT 1") as cur:
            row = await cur.fetchone()
        return (row is not None, row["key_id"] if row is not None else None)

    async def audit_rows(self, *, after: int = 0, limit: int = 2000) -> list[dict[str, Any]]:
        """Raw stored rows in seq order (for verification: an altered row must not stop the read)."""
        sql = "SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?"
        async with self._db.execute(sql, (after, limit)) as cur:
            rows = await cur.fetchall()
        return [dict(r) for r in rows]

    # --- SIEM delivery cursors (service/siem/) -------------------------------------------------

    async def siem_cursor(self, sink: str) -> int:
        """The last audit seq delivered to `sink` (0: nothing yet)."""
        async with self._db.execute("SELECT seq FROM siem_cursors WHERE sink = ?", (sink,)) as cur:
            row = await cur.fetchone()
        return int(row["seq"]) if row is not None else 0

    async def set_siem_cursor(self, sink: str, seq: int) -> None:
        """Persist what `sink` has received (not audited: it would be a record about records)."""
        async with self._write_lock:
            await self._db.execute(
                "INSERT INTO siem_cursors (sink, seq, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(sink) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at",
                (sink, seq, _ts(now())),
            )

    # --- idempotency keys (service/idempotency.py) ---------------------------------------------

    async def idempotent_answer(self, scope: str, route: str, key: str) -> StoredAnswer | None:
        """The answer stored for this key, unless it expired (then it is as if there were none)."""
        sql = (
            "SELECT body_sha256, status, content_type, body, expires_at FROM idempotency "
            "WHERE scope = ? AND route = ? AND key = ? AND expires_at > ?"
        )
        async with self._db.execute(sql, (scope, route, key, _ts(now()))) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return StoredAnswer(
            row["body_sha256"], row["status"], row["content_type"], bytes(row["body"]), _dt(row["expires_at"])
        )

    async def keep_idempotent_answer(self, scope: str, route: str, key: str, answer: StoredAnswer) -> None:
        """Store (or replace an expired) answer for this key; not audited (the request itself is)."""
        sql = (
            "INSERT OR REPLACE INTO idempotency (scope, route, key, body_sha256, status, content_type, "
            "body, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        params = (
            scope,
            route,
            key,
            answer.body_sha256,
            answer.status,
            answer.content_type,
            answer.body,
            _ts(now()),
            _ts(answer.expires_at),
        )
        await self._write([(sql, params)], None)

    async def sweep_idempotency(self) -> int:
        """Forget the keys past their TTL; returns how many."""
        async with self._write_lock:
            cur = await self._db.execute("DELETE FROM idempotency WHERE expires_at <= ?", (_ts(now()),))
            count = cur.rowcount
            await cur.close()
        return max(count, 0)

    async def secret(self, name: str, size: int = 32) -> bytes:
        """A random secret made once and kept in the state (e.g. the key that signs list cursors)."""
        if name in self._secrets:
            return self._secrets[name]
        async with self._write_lock:
            await self._db.execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES (?, ?)", (name, secrets.token_bytes(size))
            )
            async with self._db.execute("SELECT value FROM secrets WHERE name = ?", (name,)) as cur:
                row = await cur.fetchone()
        assert row is not None
        self._secrets[name] = bytes(row["value"])
        return self._secrets[name]

    async def audit_head(self) -> int:
        """The newest audit seq (0: an empty log)."""
        async with self._db.execute("SELECT MAX(seq) FROM audit") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row is not None and row[0] is not None else 0
