"""Every exec in a job's box and its audit record: `run_tool` is the one way a tool call reaches
a box. Whatever its outcome, an exec is ONE audit record (what ran, its duration, its outcome)
and one `exec` event. Kept apart from the job's lifecycle: the transport behind it (one exec per
call today) can change without touching how jobs live and end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from service.audit import Actor, AuditEntry
from service.errors import FAILURES, DockyardError, SandboxFailed, contract
from service.events import EventHub
from service.jobs.lifecycle import Lifecycle, not_ready
from service.sandbox.backend import ExecResult, SandboxBackend
from service.sandbox.errors import BackendRefused, BackendUnavailable, SandboxGone
from service.settings import Settings
from service.store import JobRecord, Store
from service.tenants import TenantLimiter
from service.tools.protocol import ToolCall

T = TypeVar("T")


class Execs:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        backend: SandboxBackend,
        hub: EventHub,
        limiter: TenantLimiter,
        lifecycle: Lifecycle,
    ):
        self.settings = settings
        self.store = store
        self.backend = backend
        self.hub = hub
        self.limiter = limiter
        self._life = lifecycle

    async def ready_job(self, job_id: str) -> JobRecord:
        job = await self._life.get(job_id)
        if job.status != "ready" or not job.container_id:
            raise not_ready(job)
        return job

    @staticmethod
    def _path(call: ToolCall) -> dict[str, Any]:
        return {"path": call.path} if call.path is not None else {}

    async def run_tool(
        self, job_id: str, call: ToolCall, actor: Actor, parse: Callable[[ExecResult], T]
    ) -> T:
        """Run one exec in the job's box, audit it, and parse its answer (refusals raise)."""
        job = await self.ready_job(job_id)
        assert job.container_id is not None
        timeout = float(job.limits.get("tool_timeout_s", 30))
        try:
            async with self.limiter.slot(actor, "exec"):
                result = await self.backend.exec(
                    job.container_id,
                    call.argv,
                    stdin=call.stdin,
                    timeout_s=timeout,
                    output_cap=self.settings.output_cap_bytes,
                )
        except FAILURES as e:  # no exec ran (or none we can account for): still one record
            failure = contract(e)
            await self.store.audit(
                AuditEntry(
                    actor=actor,
                    action=call.action,
                    outcome=failure.code,
                    job_id=job.id,
                    container_id=job.container_id,
                    argv=call.argv,
                    details={**self._path(call), "error": failure.message},
                )
            )
            if isinstance(e, SandboxGone):
                raise not_ready(await self._life.vanished(job)) from e  # or it ended meanwhile
            if isinstance(e, (BackendRefused, BackendUnavailable)):
                ended = await self._ended_meanwhile(job)
                if ended is not None:
                    raise not_ready(ended) from e
            raise
        details = self._path(call)
        outcome = result.outcome
        error: DockyardError | None = None
        try:
            parsed = parse(result)
        except DockyardError as e:
            error = e
            if isinstance(e, SandboxFailed):  # a box killed under the exec (a delete racing it)
                ended = await self._ended_meanwhile(job)
                error = not_ready(ended) if ended is not None else e
            outcome = error.code
            details["error"] = error.message
        await self.store.audit(
            AuditEntry(
                actor=actor,
                action=call.action,
                outcome=outcome,
                job_id=job.id,
                container_id=job.container_id,
                argv=result.argv,
                exit_code=result.exit_code,
                duration_ms=result.duration_ms,
                bytes_in=result.bytes_in,
                bytes_out=result.bytes_out,
                details={**details, "timed_out": result.timed_out, "oom_killed": result.oom_killed},
            )
        )
        await self.hub.publish(
            job.id,
            "exec",
            {"action": call.action, "outcome": outcome, "duration_ms": result.duration_ms, **details},
        )
        if error is not None:
            raise error
        return parsed
    async def _ended_meanwhile(self, job: JobRecord) -> JobRecord | None:
        """After an exec failed: the job as it is once an end in flight (delete, reap) has
        settled, when it is no longer ready or its box is gone; None when the job is still ready
        with its box running (the failure is the box's own)."""
        lock = self._life.held(job.id)
        if lock is not None and lock.locked():
            async with lock:
                pass
        fresh = await self._life.get(job.id)
        if fresh.status != "ready" or not fresh.container_id:
            return fresh
        try:
            if await self.backend.is_running(fresh.container_id):
                return None
        except FAILURES:
            return None  # the engine is away: the original error says more
        return await self._life.vanished(fresh)
