"""Every call into a job's box and its audit record.

`run_tool(job, tool, request)` is the one way a tool reaches a box: the tool (service/tools/
registry.py) builds its helper call, the job's channel (service/channel/) carries it to the box's
long-lived helper, and whatever the outcome the call is ONE audit record (what it named, its
duration, sizes, content hashes, outcome) and one `exec` event. `run_exec` is the same for a plain
command that is not a tool (a fresh exec: lint's file probe). Kept apart from the job's lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import ValidationError

from service.audit import Actor, AuditEntry
from service.channel import ChannelClosed, Channels, HelperChannel, Reply
from service.errors import FAILURES, DockyardError, SandboxFailed, contract
from service.events import EventHub
from service.jobs.lifecycle import Lifecycle, not_ready
from service.sandbox.backend import ExecResult, SandboxBackend
from service.sandbox.errors import BackendRefused, BackendUnavailable, SandboxError, SandboxGone
from service.settings import Settings
from service.store import JobRecord, Store
from service.tenants import TenantLimiter
from service.tools.call import Caps, ExecCall, HelperCall
from service.tools.ops import NoteArgs, args, refusal
from service.tools.registry import Tool

T = TypeVar("T")
Req = TypeVar("Req")
Res = TypeVar("Res")
NOTE_TIMEOUT_S = 2.0
FRAME_SLACK = 1 << 20  # a frame's header and framing on top of the largest body the caps allow


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
        self.caps = Caps(
            read=settings.read_cap_bytes, write=settings.write_cap_bytes, output=settings.output_cap_bytes
        )
        # One helper per box over one long-lived exec; a frame over the output cap is refused unread.
        self.channels = Channels(backend.open_helper, max_body=settings.output_cap_bytes + FRAME_SLACK)

    async def drop_channel(self, job_id: str) -> None:
        """An `on_closing` hook: the job's helper channel goes before its box."""
        job = await self._life.get(job_id)
        if job.container_id:
            await self.channels.drop(job.container_id)  # its helper would end with the box anyway

    async def ready_job(self, job_id: str) -> JobRecord:
        job = await self._life.get(job_id)
        if job.status != "ready" or not job.container_id:
            raise not_ready(job)
        return job

    # --- tools: over the channel ------------------------------------------------------------------

    async def run_tool(
        self,
        job_id: str,
        tool: Tool[Req, Res],
        req: Req,
        actor: Actor,
        *,
        caps: Caps | None = None,
        closing: bool = False,
    ) -> Res:
        """One tool call: one audit record whatever its outcome; a refusal raises its typed error,
        a call killed for time is a result. `closing`: the job is ending under the caller's lock,
        so a failure is raised as it is, never settled against the job's state."""
        job = await self.ready_job(job_id)
        assert job.container_id is not None
        call = tool.call(req, caps or self.caps)
        timeout = float(job.limits.get("tool_timeout_s", 30))
        try:
            async with self.limiter.slot(actor, "exec"):
                reply = await self._helper_call(job.container_id, call, timeout, retry=tool.idempotent)
        except FAILURES as e:  # no answer came (box gone, engine away): still one record
            await self._audit_call(job, tool.action, call, actor, None, contract(e))
            raise (contract(e) if closing else await self._exec_error(job, e)) from e
        error: DockyardError | None = None
        result: Res | None = None
        try:
            if reply.timed_out:
                result = tool.interrupted(req, {"timed_out": True, "oom_killed": False})
            elif not reply.ok:
                error = refusal(reply.error or {})
            else:
                result = tool.answer(req, reply)
        except ValidationError as e:
            error = SandboxFailed(
                "the sandbox helper gave an answer out of its schema", {"error": str(e)[:500]}
            )
        except DockyardError as e:
            error = e
        await self._audit_call(job, tool.action, call, actor, reply, error)
        if error is not None:
            raise error
        assert result is not None
        return result

    async def _helper_call(self, box_id: str, call: HelperCall, timeout_s: float, *, retry: bool) -> Reply:
        """The call on the box's channel. A helper that died under it is replaced on the next
        call; a read is sent once more to the new one (a write is not: it may have happened)."""
        for attempt in (1, 2):
            chan = await self._channel(box_id)
            try:
                return await chan.call(call.op, call.args, call.body, timeout_s=timeout_s)
            except ChannelClosed as e:
                if attempt == 2 or not retry:
                    await self.backend.ping()  # the engine went away under it: that is the answer
                    raise SandboxFailed(f"the sandbox helper stopped during the call: {e}", {}) from e
        raise AssertionError("unreachable")

    async def _channel(self, box_id: str) -> HelperChannel:
        try:
            return await self.channels.get(box_id)
        except ChannelClosed as e:
            raise SandboxFailed(str(e), {}) from e

    async def _audit_call(
        self,
        job: JobRecord,
        action: str,
        call: HelperCall,
        actor: Actor,
        reply: Reply | None,
        error: DockyardError | None,
    ) -> None:
        details: dict[str, Any] = {**_path(call.path), **call.details}
        if reply is not None:
            for key in ("content_sha256", "before_sha256"):
                if reply.result.get(key):
                    details[key] = reply.result[key]
            details["timed_out"] = reply.timed_out
            details["oom_killed"] = False  # an answer came: the helper was not killed for memory
        if error is not None:
            details["error"] = error.message
        timed_out = reply is not None and reply.timed_out
        outcome = error.code if error is not None else ("timed_out" if timed_out else "ok")
        entry = AuditEntry(
            actor=actor,
            action=action,
            outcome=outcome,
            job_id=job.id,
            container_id=job.container_id,
            argv=call.argv,
            exit_code=None if reply is None else (0 if reply.ok else 3),
            duration_ms=None if reply is None else reply.duration_ms,
            bytes_in=None if reply is None else reply.bytes_in,
            bytes_out=None if reply is None else reply.bytes_out,
            details=details,
        )
        event = {
            "action": action,
            "outcome": outcome,
            "duration_ms": None if reply is None else reply.duration_ms,
            **_path(call.path),
        }
        # the record and its `exec` event in one transaction: one round trip to the store per call
        self.hub.deliver(await self.store.audit_with_event(entry, job.id, "exec", event))

    # --- plain commands: a fresh exec -------------------------------------------------------------

    async def run_exec(
        self, job_id: str, call: ExecCall, actor: Actor, parse: Callable[[ExecResult], T]
    ) -> T:
        """One plain command in the job's box (not the helper), audited, its answer parsed."""
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
        except FAILURES as e:
            failure = contract(e)
            await self.store.audit(
                AuditEntry(
                    actor=actor,
                    action=call.action,
                    outcome=failure.code,
                    job_id=job.id,
                    container_id=job.container_id,
                    argv=call.argv,
                    details={"error": failure.message},
                )
            )
            raise await self._exec_error(job, e) from e
        outcome = result.outcome
        error: DockyardError | None = None
        details: dict[str, Any] = {}
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
        await self._note(job.container_id, call, result)
        if error is not None:
            raise error
        return parsed

    async def _note(self, box_id: str, call: ExecCall, result: ExecResult) -> None:
        """One line in the box's own log for a plain exec (the helper logs its own calls):
        what ran (its program and argument count, never the arguments), exit, duration."""
        line = (
            f"exec action={call.action} argv0={call.argv[0] if call.argv else ''} args={len(call.argv) - 1} "
            f"exit={result.exit_code} ms={result.duration_ms} outcome={result.outcome}"
        )
        try:
            chan = await self.channels.get(box_id)
            await chan.call("note", args(NoteArgs(line=line)), timeout_s=NOTE_TIMEOUT_S)
        except (*FAILURES, ChannelClosed):
            pass  # the log line is a courtesy: the audit record is the truth

    # --- when no answer came ----------------------------------------------------------------------

    async def _exec_error(self, job: JobRecord, e: DockyardError | SandboxError) -> DockyardError:
        """What the caller hears: a box gone, or a job that ended meanwhile, is `job_not_ready`;
        anything else the contract's error for it."""
        if isinstance(e, SandboxGone):
            return not_ready(await self._life.vanished(job))  # or it ended meanwhile
        if isinstance(e, (BackendRefused, BackendUnavailable, SandboxFailed)):
            ended = await self._ended_meanwhile(job)
            if ended is not None:
                return not_ready(ended)
        return contract(e)

    async def _ended_meanwhile(self, job: JobRecord) -> JobRecord | None:
        """After a call failed: the job as it is once an end in flight (delete, reap) has
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


def _path(path: str | None) -> dict[str, Any]:
    return {"path": path} if path is not None else {}
