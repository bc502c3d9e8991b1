"""The audit log's records and hash chain.

Each record's `hash` is SHA-256 over the previous record's hash and the record's own canonical
JSON, so altering or removing any record breaks every hash after it. Records carry argv, exit
codes, durations and byte counts — never file contents, never tokens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True)
class Actor:
    name: str
    role: str


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

    @classmethod
    def from_entry(cls, e: AuditEntry, *, seq: int, at: str, prev_hash: str) -> AuditRecord:
        return cls(
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


def chain_hash(record: AuditRecord) -> str:
    body = asdict(record)
    body.pop("hash")
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((record.prev_hash + canonical).encode()).hexdigest()
