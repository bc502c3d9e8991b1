"""Tenants: who may see a job, and how much of the service one tenant may hold at once.

A job belongs to the tenant of the token that created it. Bots see and drive only their tenant's
jobs; auditors and admins see all. Each tenant gets its own bounded share of concurrent tool calls
(`exec`) and of linter/test boxes (`run`): a call waits for a free slot of its tenant (never of
another's), and when too many of that tenant's calls already wait it is refused with 429, so one
tenant's storm queues behind itself while everyone else is served.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from service.audit import Actor
from service.errors import TooManyRequests
from service.settings import Settings
from service.store import JobRecord

SlotKind = Literal["exec", "run"]


def can_see(actor: Actor, job: JobRecord) -> bool:
    """Auditors, admins and the system see every job; a bot only its own tenant's."""
    return actor.role != "bot" or job.tenant == actor.tenant


@dataclass
class _Gate:
    slots: asyncio.Semaphore
    waiting: int = 0
    running: int = 0


@dataclass
class TenantLimiter:
    caps: dict[SlotKind, int]
    max_waiting: int
    wait_s: float
    _gates: dict[tuple[str, SlotKind], _Gate] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantLimiter:
        return cls(
            caps={"exec": settings.tenant_max_execs, "run": settings.tenant_max_runs},
            max_waiting=settings.tenant_max_waiting,
            wait_s=settings.tenant_wait_s,
        )

    def _busy(self, actor: Actor, kind: SlotKind, why: str) -> TooManyRequests:
        cap = self.caps[kind]
        what = "tool calls" if kind == "exec" else "lint/test runs"
        return TooManyRequests(
            f"tenant {actor.tenant!r} already runs {cap} {what} at once and {why}; retry later",
            retry_after_s=5,
            details={"tenant": actor.tenant, "kind": kind, "cap": cap, "max_waiting": self.max_waiting},
        )

    @asynccontextmanager
    async def slot(self, actor: Actor, kind: SlotKind) -> AsyncIterator[None]:
        """Hold one of the tenant's `kind` slots for the duration of the block."""
        if not actor.tenant:  # the service itself (reaper, reconcile) is never throttled
            yield
            return
        key = (actor.tenant, kind)
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Gate(asyncio.Semaphore(self.caps[kind]))
        if gate.slots.locked() and gate.waiting >= self.max_waiting:
            raise self._busy(actor, kind, f"{gate.waiting} more are waiting")
        gate.waiting += 1
        try:
            await asyncio.wait_for(gate.slots.acquire(), self.wait_s)
        except TimeoutError:
            raise self._busy(actor, kind, f"none finished within {self.wait_s:g} s") from None
        finally:
            gate.waiting -= 1
        gate.running += 1
        try:
            yield
        finally:
            gate.running -= 1
            gate.slots.release()

    def usage(self) -> dict[str, dict[str, int]]:
        """Running and waiting calls per tenant and kind (for /v1/config and tests)."""
        out: dict[str, dict[str, int]] = {}
        for (tenant, kind), gate in self._gates.items():
            out.setdefault(tenant, {})[f"{kind}_running"] = gate.running
            out[tenant][f"{kind}_waiting"] = gate.waiting
        return out
