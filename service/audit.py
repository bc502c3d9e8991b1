"""The audit log's records and hash chain.

Each record's `hash` is SHA-256 over the previous record's hash and the record's own canonical
JSON, so altering or removing any record breaks every hash after it. Records carry argv, exit
codes, durations and byte counts — never file contents, never tokens.

`ChainVerifier` finds the first altered or missing record (used by `GET /v1/audit/verify` and,
offline on the state dir, by `dockyard audit verify`); `export_jsonl` backs `dockyard audit export`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import IO, Any

GENESIS = "0" * 64


def key_id(key: bytes) -> str:
    """A key's public name: recorded on every record it authenticates, never the key itself."""
    return hashlib.sha256(b"dockyard-audit-key:" + key).hexdigest()[:16]


@dataclass(frozen=True)
class AuditKeys:
    """HMAC-SHA256 keys kept OUTSIDE the state dir: the first signs, all of them verify.

    Each record's MAC covers its seq and its chain hash, so whoever can rewrite the state dir but
    not read the key file cannot forge a single record: recomputing every hash (and every
    anchor) still leaves the MACs wrong.
    """

    current: bytes
    known: dict[str, bytes]

    @classmethod
    def of(cls, keys: list[bytes]) -> AuditKeys:
        return cls(keys[0], {key_id(k): k for k in keys})

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    @staticmethod
    def mac_with(key: bytes, seq: int, record_hash: str) -> str:
        return hmac.new(key, f"{seq}:{record_hash}".encode(), hashlib.sha256).hexdigest()

    def sign(self, seq: int, record_hash: str) -> tuple[str, str]:
        return self.current_id, self.mac_with(self.current, seq, record_hash)


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    tenant: str = ""  # the tenant whose jobs this actor drives ("" = the system)


SYSTEM = Actor("dockyard", "system")


@dataclass
class AuditEntry:
    """What a caller hands to the store; seq, time and hashes are added there."""

    actor: Actor
    action: str
    outcome: str
    job_id: str | None = None
    container_id: str | None = None
    argv: list[str] | None = None
    exit_code: int | None = None
    duration_ms: int | None = None
    bytes_in: int | None = None
    bytes_out: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None  # default: the actor's tenant, else (the system) the job's


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: str
    actor: str
    role: str
    job_id: str | None
    action: str
    container_id: str | None
    argv: list[str] | None
    exit_code: int | None
    duration_ms: int | None
    bytes_in: int | None
    bytes_out: int | None
    outcome: str
    details: dict[str, Any]
    prev_hash: str
    hash: str = ""
    tenant: str | None = None
    key_id: str | None = None  # which audit key authenticated this record (None: unkeyed)
    mac: str | None = None  # HMAC-SHA256 over seq and hash with that key

    @classmethod
    def from_entry(cls, e: AuditEntry, *, seq: int, at: str, prev_hash: str) -> AuditRecord:
        return cls(
            tenant=e.tenant if e.tenant is not None else (e.actor.tenant or None),
            seq=seq,
            at=at,
            actor=e.actor.name,
            role=e.actor.role,
            job_id=e.job_id,
            action=e.action,
            container_id=e.container_id,
            argv=e.argv,
            exit_code=e.exit_code,
            duration_ms=e.duration_ms,
            bytes_in=e.bytes_in,
            bytes_out=e.bytes_out,
            outcome=e.outcome,
            details=e.details,
            prev_hash=prev_hash,
        )

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuditRecord:
        row = dict(row)
        row["argv"] = json.loads(row["argv"]) if row["argv"] is not None else None
        row["details"] = json.loads(row["details"])
        return cls(**row)

    def with_hash(self, h: str) -> AuditRecord:
        return replace(self, hash=h)

    def signed(self, keys: AuditKeys | None) -> AuditRecord:
        if keys is None:
            return self
        kid, mac = keys.sign(self.seq, self.hash)
        return replace(self, key_id=kid, mac=mac)


RECORD_FIELDS = fields(AuditRecord)


def fields_of(record: AuditRecord) -> dict[str, Any]:
    """A record's fields as a dict, values as they are (`asdict` deep-copies every value: this is
    on every write's path, and records are frozen)."""
    return {f.name: getattr(record, f.name) for f in RECORD_FIELDS}


def chain_hash(record: AuditRecord) -> str:
    body = fields_of(record)
    for name in ("hash", "key_id", "mac"):  # the MAC authenticates the hash: it is not in it
        body.pop(name)
    if body["tenant"] is None:  # records from before tenants existed keep their hashes
        body.pop("tenant")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((record.prev_hash + canonical).encode()).hexdigest()


# --- verification and export ------------------------------------------------------------------------

DB_NAME = "dockyard.sqlite3"


@dataclass(frozen=True)
class VerifyResult:
    """The chain checked from seq 1: `ok`, or the first record that is altered or missing."""

    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    keyed: bool = False  # a key was given and every record since the first keyed one verified


class ChainVerifier:
    """Feed stored rows in seq order; it stops at the first break.

    A record is *altered* when its content no longer gives its hash, or when its `prev_hash` is
    not the previous record's hash (a record changed and re-hashed breaks the next link). A record
    is *missing* when the seqs jump. Removing records at the tail leaves a shorter, valid chain;
    `anchors` (seq → hash, e.g. from the git outcome trail) catch that: every anchored record must
    still be there with the same hash.
    """

    def __init__(self, anchors: dict[int, str] | None = None, keys: AuditKeys | None = None):
        self.anchors = dict(anchors or {})
        self.keys = keys
        self.keyed_seen = 0
        self.count = 0
        self.prev_hash = GENESIS
        self.next_seq = 1
        self.broken: tuple[int, str] | None = None

    def feed_rows(self, rows: list[dict[str, Any]]) -> bool:
        """Check rows in order; False once the chain is broken (stop feeding)."""
        return all(self.feed_row(row) for row in rows)

    def feed_row(self, row: dict[str, Any]) -> bool:
        """Check one stored row; False once the chain is broken (stop feeding)."""
        if self.broken is not None:
            return False
        seq = row.get("seq")
        if not isinstance(seq, int):
            self.broken = (self.next_seq, "a record has no integer seq")
            return False
        if seq != self.next_seq:
            if seq < self.next_seq:
                self.broken = (seq, f"record {seq} appears twice or out of order")
            else:
                gap = f"{self.next_seq}" if seq == self.next_seq + 1 else f"{self.next_seq}..{seq - 1}"
                self.broken = (self.next_seq, f"record(s) {gap} missing")
            return False
        try:
            record = AuditRecord.from_row(row)
        except (TypeError, ValueError) as e:
            self.broken = (seq, f"record {seq} is unreadable (altered): {type(e).__name__}")
            return False
        if record.prev_hash != self.prev_hash:
            self.broken = (
                seq,
                f"record {seq}'s prev_hash is not record {seq - 1}'s hash "
                f"(record {seq - 1} was altered and re-hashed, or this link was)",
            )
            return False
        if chain_hash(record) != record.hash:
            self.broken = (seq, f"record {seq}'s content does not match its hash (altered)")
            return False
        if self.keys is not None and not self._authentic(record):
            return False
        anchored = self.anchors.get(seq)
        if anchored is not None and anchored != record.hash:
            self.broken = (seq, f"record {seq} differs from the hash the outcome trail recorded for it")
            return False
        self.count += 1
        self.prev_hash = record.hash
        self.next_seq = seq + 1
        return True

    def _authentic(self, record: AuditRecord) -> bool:
        """With keys: a keyed record's MAC must verify; once one did, every later one must be keyed."""
        assert self.keys is not None
        seq = record.seq
        if record.mac is None or record.key_id is None:
            if self.keyed_seen:
                self.broken = (
                    seq,
                    f"record {seq} is not authenticated although earlier ones are "
                    "(records were rewritten without the key)",
                )
                return False
            return True
        key = self.keys.known.get(record.key_id)
        if key is None:
            self.broken = (seq, f"record {seq} is authenticated with key {record.key_id}, not one given")
            return False
        if not hmac.compare_digest(AuditKeys.mac_with(key, seq, record.hash), record.mac):
            self.broken = (
                seq,
                f"record {seq}'s authentication code does not match (rewritten by someone without the key)",
            )
            return False
        self.keyed_seen += 1
        return True

    def result(self) -> VerifyResult:
        head_seq = self.next_seq - 1 if self.count else None
        head_hash = self.prev_hash if self.count else None
        if self.broken is None and self.keys is not None and self.count and not self.keyed_seen:
            self.broken = (
                1,
                "no record is authenticated although a key is given: the log was rewritten "
                "without the key (or the service never ran with it)",
            )
        if self.broken is None:
            beyond = sorted(s for s in self.anchors if s >= self.next_seq)
            if beyond:
                self.broken = (
                    self.next_seq,
                    f"record(s) {self.next_seq}..{beyond[-1]} missing: the outcome trail anchors "
                    f"record {beyond[-1]}, the log ends at {self.next_seq - 1}",
                )
        if self.broken is not None:
            seq, reason = self.broken
            return VerifyResult(False, self.count, seq, reason, head_seq, head_hash)
        keyed = self.keys is not None and self.keyed_seen > 0
        return VerifyResult(True, self.count, None, None, head_seq, head_hash, keyed)


def open_readonly(state_dir: Path) -> sqlite3.Connection:
    """The state database, read-only (safe next to a running service: WAL readers never block)."""
    path = state_dir / DB_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no dockyard database at {path}; set DOCKYARD_STATE_DIR")
    conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn


def iter_rows(
    conn: sqlite3.Connection, *, job_id: str | None = None, batch: int = 2000
) -> Iterator[dict[str, Any]]:
    """Every audit row in seq order (optionally one job's), fetched in batches."""
    last = 0
    while True:
        sql = "SELECT * FROM audit WHERE seq > ?"
        params: list[Any] = [last]
        if job_id is not None:
            sql += " AND job_id = ?"
            params.append(job_id)
        rows = conn.execute(sql + " ORDER BY seq LIMIT ?", [*params, batch]).fetchall()
        if not rows:
            return
        for row in rows:
            yield dict(row)
        last = rows[-1]["seq"]


def verify_rows(
    rows: Iterable[dict[str, Any]], anchors: dict[int, str] | None = None, keys: AuditKeys | None = None
) -> VerifyResult:
    verifier = ChainVerifier(anchors, keys)
    for row in rows:
        if not verifier.feed_row(row):
            break
    return verifier.result()


SURFACED = ("path", "content_sha256", "before_sha256")  # details a record shows as its own fields


def record_json(record: AuditRecord) -> dict[str, Any]:
    """A record as the API shows it: its columns, and the details callers filter on as fields."""
    body = fields_of(record)
    for key in SURFACED:
        value = record.details.get(key)
        body[key] = value if isinstance(value, str) else None
    return body


def export_jsonl(conn: sqlite3.Connection, out: IO[str], *, job_id: str | None = None) -> int:
    """Write the records (one job's, or all) as JSON Lines; returns how many."""
    n = 0
    for row in iter_rows(conn, job_id=job_id):
        try:
            body = record_json(AuditRecord.from_row(row))
        except (TypeError, ValueError):
            body = {k: row[k] for k in row}  # an altered row: exported as stored
        out.write(json.dumps(body, sort_keys=True, ensure_ascii=False) + "\n")
        n += 1
    return n
