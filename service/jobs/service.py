"""JobService: the one class callers use, composed of the job's lifecycle, its execs and the
running image config. Handlers call it; the parts do the work."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from service import cursor
from service.audit import Actor
from service.channel import Channels
from service.events import EventHub
from service.github.client import GitHubApp
from service.jobs.config import ImageConfig, ImageState
from service.jobs.environments import Environments
from service.jobs.execs import Execs
from service.jobs.kept import KeptDiffs
from service.jobs.lifecycle import Lifecycle
from service.models import DiffResult, EnvState, JobCreate, JobListQuery
from service.sandbox.backend import ExecResult, SandboxBackend
from service.settings import Settings
from service.store import JobRecord, Store
from service.tenants import TenantLimiter
from service.tools.call import Caps, ExecCall
from service.tools.diff import DiffQuery, to_result
from service.tools.registry import DIFF, Composite, Tool

T = TypeVar("T")
Req = TypeVar("Req")
Res = TypeVar("Res")
R = TypeVar("R")
S = TypeVar("S")


@dataclass(frozen=True)
class _JobRunner:
    """A composite tool's steps on one job: each an audited tool call naming the composite."""

    execs: Execs
    job_id: str
    actor: Actor
    caps: Caps | None
    via: str

    def __call__(self, tool: Tool[R, S], req: R, /) -> Awaitable[S]:
        return self.execs.run_tool(self.job_id, tool.via(self.via), req, self.actor, caps=self.caps)


class JobService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        backend: SandboxBackend,
        images: ImageState,
        hub: EventHub,
        github: GitHubApp | None = None,
    ):
        self.github = github
        self.settings = settings
        self.store = store
        self.backend = backend
        self.hub = hub
        self.limiter = TenantLimiter.from_settings(settings)
        self.config = ImageConfig(settings, store, images)
        self.lifecycle = Lifecycle(settings, store, backend, self.config, hub, github)
        self.execs = Execs(settings, store, backend, hub, self.limiter, self.lifecycle)
        self.kept = KeptDiffs(settings.state_dir / "diffs", store, self.execs)
        # before a box goes: its final diff is kept, then its helper channel is closed
        self.lifecycle.on_closing.extend([self.kept.capture, self.execs.drop_channel])
        self.work_root = self.lifecycle.work_root
        # awaited before a job's box and volume are removed (its linter boxes mount that volume)
        self.on_closing: list[Callable[[str], Awaitable[None]]] = self.lifecycle.on_closing
        # called with a job's id once its end has committed (test runs' base cache); must not raise
        self.end_hooks: list[Callable[[str], None]] = self.lifecycle.end_hooks

    # --- what the parts share, as attributes callers set or read ---------------------------------

    @property
    def images(self) -> ImageState:
        """The running image config (swapped whole by `reload_config`)."""
        return self.config.state

    @images.setter
    def images(self, state: ImageState) -> None:
        self.config.state = state

    @property
    def env(self) -> Environments | None:
        """Dependency environments (service/env/), set by the app; None: jobs get no /env."""
        return self.lifecycle.env

    @env.setter
    def env(self, env: Environments | None) -> None:
        self.lifecycle.env = env

    @property
    def on_end(self) -> Callable[[str], None] | None:
        """Called with a job's id once its end has committed (the outcome trail)."""
        return self.lifecycle.on_end

    @on_end.setter
    def on_end(self, hook: Callable[[str], None] | None) -> None:
        self.lifecycle.on_end = hook

    # --- config --------------------------------------------------------------------------------

    async def reload_config(self, actor: Actor) -> ImageState:
        """Re-read the ops file; on any mistake keep the running config and raise a clear error."""
        return await self.config.reload(actor)

    # --- lifecycle -----------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord:
        return await self.lifecycle.get(job_id)

    async def get_checked(self, job_id: str) -> JobRecord:
        return await self.lifecycle.get_checked(job_id)

    async def authorize(self, job_id: str, actor: Actor) -> None:
        await self.lifecycle.authorize(job_id, actor)

    async def page(self, actor: Actor, q: JobListQuery) -> tuple[list[JobRecord], str | None]:
        """One page of `GET /v1/jobs` (REST and MCP alike): newest first, `q.limit` at a time, and
        the cursor that continues after it (None on the last page; service.cursor)."""
        labels = dict(item.split(":", 1) for item in q.label or [])
        statuses = sorted(set(q.status)) if q.status else None
        filters = {"status": statuses, "label": sorted(labels.items()), "tenant": q.tenant}
        key = await self.store.secret(cursor.KEY_NAME)
        before = cursor.decode(key, q.cursor, filters) if q.cursor is not None else None
        jobs = await self.list(
            actor,
            list(statuses) if statuses else None,
            labels or None,
            q.tenant,
            q.limit + 1,  # one more: is there a next page?
            (before.created_at, before.job_id) if before is not None else None,
        )
        page = jobs[: q.limit]
        if len(jobs) <= q.limit:
            return page, None
        last = page[-1]
        return page, cursor.encode(key, cursor.Position(last.created_at, last.id), filters)

    async def list(
        self,
        actor: Actor,
        statuses: list[str] | None,
        labels: dict[str, str] | None,
        tenant: str | None,
        limit: int,
        before: tuple[datetime, str] | None = None,
    ) -> list[JobRecord]:
        """Newest first; `before`: the (created_at, id) of the last job of the previous page."""
        return await self.lifecycle.list(actor, statuses, labels, tenant, limit, before)

    def footprint_mb(self, limits: dict[str, Any]) -> int:
        return self.lifecycle.footprint_mb(limits)

    async def create(self, req: JobCreate, actor: Actor) -> JobRecord:
        return await self.lifecycle.create(req, actor)

    async def drain(self, timeout_s: float) -> None:
        await self.lifecycle.drain(timeout_s)

    async def delete(self, job_id: str, actor: Actor) -> None:
        await self.lifecycle.delete(job_id, actor)

    def env_state(self, job_id: str) -> EnvState | None:
        return self.lifecycle.env_state(job_id)

    async def reap(self, job_id: str) -> bool:
        return await self.lifecycle.reap(job_id)

    async def fail_interrupted(self, job_id: str) -> None:
        await self.lifecycle.fail_interrupted(job_id)

    async def mark_vanished(self, job_id: str) -> JobRecord:
        return await self.lifecycle.mark_vanished(job_id)

    def log_path(self, job_id: str) -> Path:
        return self.lifecycle.log_path(job_id)

    async def logs(self, job_id: str, actor: Actor | None = None) -> bytes:
        return await self.lifecycle.logs(job_id, actor)

    # --- execs ---------------------------------------------------------------------------------

    async def ready_job(self, job_id: str) -> JobRecord:
        return await self.execs.ready_job(job_id)

    @property
    def caps(self) -> Caps:
        """The byte caps tool calls are built with (a caller may narrow them for one call)."""
        return self.execs.caps

    @property
    def channels(self) -> Channels:
        """The boxes' helper channels (closed at shutdown; counted in /metrics)."""
        return self.execs.channels

    async def run_tool(
        self,
        job_id: str,
        tool: Tool[Req, Res] | Composite[Req, Res],
        req: Req,
        actor: Actor,
        *,
        caps: Caps | None = None,
    ) -> Res:
        """One tool call into the job's box over its helper channel, audited (a composite tool:
        each of its steps is such a call)."""
        if isinstance(tool, Composite):
            return await tool.run(req, _JobRunner(self.execs, job_id, actor, caps, tool.name))
        return await self.execs.run_tool(job_id, tool, req, actor, caps=caps)

    async def run_exec(
        self, job_id: str, call: ExecCall, actor: Actor, parse: Callable[[ExecResult], T]
    ) -> T:
        """One plain command in the job's box (a fresh exec), audited, its answer parsed."""
        return await self.execs.run_exec(job_id, call, actor, parse)

    async def diff(self, job_id: str, actor: Actor) -> DiffResult:
        """The live workspace's diff; after the job ended, the diff kept when it did (REST and MCP)."""
        job = await self.get_checked(job_id)
        if job.status != "ready":
            kept = await self.kept.load(job)
            if kept is not None:
                return kept
        job = await self.ready_job(job.id)  # job_not_ready: it ended and kept no diff
        assert job.base_sha is not None
        cap = self.settings.output_cap_bytes
        changes = await self.run_tool(job.id, DIFF, DiffQuery(job.base_sha, cap), actor)
        return to_result(job.base_sha, changes, cap)
