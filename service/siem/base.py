"""What every sink is: something that takes a batch of committed audit records, or raises."""

from __future__ import annotations

from typing import Any, Protocol

from service.audit import AuditRecord, record_json
from service.models import AuditRecordOut


class SinkError(Exception):
    """A delivery failed (receiver down, refused, timed out): the batch is retried, never dropped."""


def record_body(record: AuditRecord) -> dict[str, Any]:
    """One record exactly as `GET /v1/audit` shows it."""
    out: dict[str, Any] = AuditRecordOut(**record_json(record)).model_dump(mode="json", by_alias=True)
    return out


class Sink(Protocol):
    @property
    def name(self) -> str:
        """Stable identity (kind and address): the key of its persisted cursor and metric label."""
        ...

    async def send(self, records: list[AuditRecord]) -> None:
        """Deliver the batch in order, or raise SinkError (then all of it is sent again)."""
        ...

    async def close(self) -> None: ...
