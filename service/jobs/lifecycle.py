"""A job's life: admission, create (clone → box → ready), delete, reap, vanish, its logs.

Owns the rules (caps, states, clamping) and drives the clone, the sandbox backend and the store;
each end (destroyed, failed, reaped) is one transaction with its audit record.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from service.audit import SYSTEM, Actor, AuditEntry
from service.clone import CloneCaps, build_tar, clone, detect_language, remove_tree, work_dir_for
from service.clone_policy import redact_url, vet_clone_url
from service.errors import (
    FAILURES,
    CloneSourceForbidden,
    DockyardError,
    GitHubNotConfigured,
    HostCapacity,
    InvalidRequest,
    JobNotFound,
    JobNotReady,
    TooManyJobs,
    contract,
)
from service.events import EventHub
from service.github.client import CloneAuth, GitHubApp, RepoId
from service.jobs.config import ImageConfig
from service.jobs.environments import Environments
from service.logging import get_logger
from service.models import EnvState, JobCreate
from service.sandbox.backend import BoxSpec, SandboxBackend, box_memory_mb
from service.sandbox.errors import BackendRefused, SandboxGone
from service.sandbox.labels import box_name
from service.settings import Limits, Settings
from service.store import JobRecord, Store, now
from service.tenants import can_see

log = get_logger(__name__)

VANISHED = "the job's container vanished behind the service's back (removed or stopped outside dockyard)"


def new_job_id() -> str:
    return "job_" + secrets.token_hex(8)


def not_ready(job: JobRecord) -> JobNotReady:
    return JobNotReady(
        f"job {job.id} is {job.status}" + (f": {job.error}" if job.error else ""),
        {"job_id": job.id, "status": job.status},
    )


class Lifecycle:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        backend: SandboxBackend,
        config: ImageConfig,
        hub: EventHub,
        github: GitHubApp | None = None,
    ):
        self.github = github
        self.settings = settings
        self.store = store
        self.backend = backend
        self._config = config
        self.hub = hub
        self._create_lock = asyncio.Lock()
        self._job_locks: dict[str, asyncio.Lock] = {}
        self._builds: set[asyncio.Future[JobRecord]] = set()
        self.work_root = settings.state_dir / "work"
        self._logs_dir = settings.state_dir / "logs"
        self.work_root.mkdir(parents=True, exist_ok=True)
        self._logs_dir.mkdir(parents=True, exist_ok=True)
        # Called with a job's id once its end (destroyed, failed, reaped) has committed: the app
        # points it at the outcome trail. Must not block or raise.
        self.on_end: Callable[[str], None] | None = None
        # More of the same, for services holding per-job state (test runs' base cache). Same rules.
        self.end_hooks: list[Callable[[str], None]] = []
        # Dependency environments (service/env/), set by the app; None: jobs get no /env.
        self.env: Environments | None = None
        # awaited before a job's box and volume are removed (its linter boxes mount that volume)
        self.on_closing: list[Callable[[str], Awaitable[None]]] = []

    def lock(self, job_id: str) -> asyncio.Lock:
        return self._job_locks.setdefault(job_id, asyncio.Lock())

    def held(self, job_id: str) -> asyncio.Lock | None:
        """The job's lock when one was made (an end in flight holds it); None otherwise."""
        return self._job_locks.get(job_id)

    # --- reading -------------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobRecord:
        job = await self.store.get_job(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}", {"job_id": job_id})
        return job

    async def get_checked(self, job_id: str) -> JobRecord:
        """The job, after making sure a `ready` job's container is really there."""
        job = await self.get(job_id)
        if job.status == "ready" and job.container_id:
            try:
                running = await self.backend.is_running(job.container_id)
            except FAILURES:
                return job  # engine away: report what we know; /readyz says the rest
            if not running:
                job = await self.vanished(job)
        return job

    async def authorize(self, job_id: str, actor: Actor) -> None:
        """A job another tenant's bot asks for is `404 job_not_found`, exactly like none at all."""
        job = await self.store.get_job(job_id)
        if job is not None and not can_see(actor, job):
            raise JobNotFound(f"no job {job_id!r}", {"job_id": job_id})

    async def list(
        self,
        actor: Actor,
        statuses: list[str] | None,
        labels: dict[str, str] | None,
        tenant: str | None,
        limit: int,
        before: tuple[datetime, str] | None = None,
    ) -> list[JobRecord]:
        if actor.role == "bot":
            tenant = actor.tenant  # a bot lists only its own tenant's jobs, whatever it asks
        return await self.store.list_jobs(
            statuses=statuses, labels=labels, tenant=tenant, limit=limit, before=before
        )

    def footprint_mb(self, limits: dict[str, Any]) -> int:
        """Host memory a job may hold: its box's memory limit (processes, workspace tmpfs, /tmp)."""
        tmp_mb = self._config.state.config.limits.tmp_mb
        return box_memory_mb(Limits.of_job(limits), tmp_mb, writes_workspace=True)

    async def _admit(self, job: JobRecord, actor: Actor) -> None:
        """Refuse (429) a job over the service's, its tenant's or the host's capacity."""
        refusal: DockyardError | None = None
        live = await self.store.count_live()
        mine = await self.store.count_live(tenant=job.tenant)
        used = sum(self.footprint_mb(lim) for lim in await self.store.live_limits())
        need = self.footprint_mb(job.limits)
        budget = self.settings.host_budget()
        if live >= self.settings.max_jobs:
            refusal = TooManyJobs(
                f"{live} jobs are live, the cap is {self.settings.max_jobs}; delete one or retry later",
                retry_after_s=30,
                details={"live_jobs": live, "max_jobs": self.settings.max_jobs},
            )
        elif mine >= self.settings.tenant_max_jobs:
            refusal = TooManyJobs(
                f"tenant {job.tenant!r} has {mine} live jobs, its cap is {self.settings.tenant_max_jobs}; "
                "delete one or retry later",
                retry_after_s=30,
                details={
                    "tenant": job.tenant,
                    "live_jobs": mine,
                    "tenant_max_jobs": self.settings.tenant_max_jobs,
                },
            )
        elif used + need > budget:
            refusal = HostCapacity(
                f"the host cannot honour this job's caps: it needs {need} MiB (memory_mb + disk_mb + tmp), "
                f"live jobs hold {used} of the {budget} MiB budget; ask for less or retry later",
                retry_after_s=30,
                details={"needed_mb": need, "used_mb": used, "budget_mb": budget},
            )
        if refusal is not None:
            await self.store.audit(
                AuditEntry(actor=actor, action="job.create", outcome=refusal.code, details=refusal.details)
            )
            raise refusal

    # --- create --------------------------------------------------------------------------------

    async def create(self, req: JobCreate, actor: Actor) -> JobRecord:
        cfg = self._config.state.config
        if (req.repo is None) == (req.clone_url is None):
            raise InvalidRequest("give exactly one of repo (owner/name) and clone_url", {})
        if req.repo is not None:
            if self.github is None or not self.github.configured:
                raise GitHubNotConfigured(
                    "repo needs the GitHub App, which is not configured on this service "
                    "(DOCKYARD_GITHUB_APP_ID and DOCKYARD_GITHUB_APP_PRIVATE_KEY); pass clone_url instead",
                    {"repo": req.repo},
                )
            web = self.settings.github_web_url.rstrip("/")
            shown_url = f"{web}/{req.repo}.git"
        source: CloneAuth | None = None
        if req.clone_url is not None:
            try:
                source = await vet_clone_url(req.clone_url, self.settings)
            except CloneSourceForbidden as e:  # an attempt worth a record: who tried which source
                await self.store.audit(
                    AuditEntry(actor=actor, action="job.create", outcome=e.code, details=e.details)
                )
                raise
            shown_url = redact_url(req.clone_url)
        if req.language is not None and req.language not in cfg.languages:
            raise InvalidRequest(
                f"unknown language {req.language!r}; configured: {', '.join(sorted(cfg.languages))}",
                {"language": req.language, "languages": sorted(cfg.languages)},
            )
        requested = req.limits.model_dump() if req.limits else None
        limits = cfg.clamp(requested)
        created = now()
        job = JobRecord(
            id=new_job_id(),
            status="creating",
            # what a request above the maximum asked for is kept beside what it got, so it is reported
            limits={**limits.model_dump(), "clamped": cfg.clamped(requested)},
            labels=dict(req.labels),
            created_at=created,
            expires_at=created + timedelta(seconds=req.ttl_s),
            repo=req.repo,
            ref=req.ref,
            clone_url=shown_url,
            language=req.language,
            actor=actor.name,
            tenant=actor.tenant or None,
        )
        async with self._create_lock:
            await self._admit(job, actor)
            await self.store.insert_job(job)
        await self.hub.publish(job.id, "job.creating", {"status": "creating"})
        # Shielded: a caller hanging up mid-create must not leave half a sandbox behind. The lock is
        # taken inside, so it is held for as long as the build runs, not as long as the caller waits.
        build = asyncio.ensure_future(self._locked_build(job, source, actor))
        self._builds.add(build)
        build.add_done_callback(self._builds.discard)
        return await asyncio.shield(build)

    async def _locked_build(self, job: JobRecord, source: CloneAuth | None, actor: Actor) -> JobRecord:
        async with self.lock(job.id):
            return await self._build(job, source, actor)

    async def drain(self, timeout_s: float) -> None:
        """Let creations in flight finish (at shutdown, before the store and engine close)."""
        if self._builds:
            await asyncio.wait(set(self._builds), timeout=timeout_s)

    async def _source(self, job: JobRecord, source: CloneAuth | None) -> CloneAuth:
        """Where to clone from: the caller's vetted URL, or the GitHub repo with a fresh read-only token."""
        if job.repo is not None:
            assert self.github is not None
            return await self.github.clone_auth(RepoId.parse(job.repo))
        assert source is not None
        return source

    async def _build(self, job: JobRecord, vetted: CloneAuth | None, actor: Actor) -> JobRecord:
        cfg = self._config.state.config
        images = self._config.state.images
        work = await asyncio.to_thread(work_dir_for, self.work_root, job.id)
        container_id: str | None = None
        volume: str | None = None
        try:
            await self.hub.publish(job.id, "job.cloning", {"repo": job.clone_url, "ref": job.ref})
            source = await self._source(job, vetted)
            schemes = (
                frozenset({urlsplit(source.url).scheme})
                if job.repo is not None
                else self.settings.allowed_clone_schemes()
            )
            checkout = await clone(
                source.url,
                job.ref,
                work / "repo",
                timeout_s=self.settings.clone_timeout_s,
                allowed_schemes=schemes,
                caps=CloneCaps.for_job(self.settings, int(job.limits["disk_mb"])),
                display=job.repo or job.clone_url,
                extra_env=source.env,
                secrets=source.secrets,
            )
            await self.store.audit(
                AuditEntry(
                    actor=actor,
                    action="clone",
                    outcome="ok",
                    job_id=job.id,
                    details={
                        "repo": job.repo or job.clone_url,
                        "ref": job.ref,
                        "base_sha": checkout.base_sha,
                    },
                )
            )
            language = job.language
            if language is None:
                language = await asyncio.to_thread(
                    detect_language, checkout.path, cfg.languages, cfg.default_language
                )
            image = images[cfg.languages[language].image].tag
            uid, _, gid = self.settings.sandbox_user.partition(":")
            # Manifests are read out of the checkout now (it is deleted below); the build goes on in
            # the background. The job box gets /env only when it is ready already (a cache hit).
            env_state = await self.env.prepare(job.id, checkout.path, image, language) if self.env else None
            env_mount = self.env.mount(env_state) if self.env else None
            tar_path = work / "workspace.tar"
            await asyncio.to_thread(build_tar, checkout.path, tar_path, int(uid), int(gid or uid))
            await self.hub.publish(job.id, "job.starting", {"image": image, "base_sha": checkout.base_sha})
            limits = cfg.clamp(job.limits)
            spec = BoxSpec(
                job_id=job.id,
                image=image,
                limits=limits,
                labels=job.labels,
                expires_at=job.expires_at,
                user=self.settings.sandbox_user,
                nofile=cfg.limits.nofile,
                fsize_bytes=limits.disk_mb * 1024 * 1024,
                tmp_mb=cfg.limits.tmp_mb,
                log_max_mb=cfg.limits.log_max_mb,
                runtime=self.settings.sandbox_runtime,
                mounts=(env_mount,) if env_mount else (),
            )
            box = await self.backend.create(spec, tar_path)
            container_id, volume = box.container_id, box.volume
            fields: dict[str, Any] = dict(
                status="ready",
                base_sha=checkout.base_sha,
                language=language,
                image=image,
                container_id=container_id,
                volume=volume,
                env_key=env_state.key if env_state is not None else None,  # adopted after a restart
            )
            await self.store.update_job(
                job.id,
                audit=AuditEntry(
                    actor=actor,
                    action="job.create",
                    outcome="ok",
                    job_id=job.id,
                    container_id=container_id,
                    details={
                        "repo": job.clone_url,
                        "ref": job.ref,
                        "base_sha": checkout.base_sha,
                        "image": image,
                    },
                ),
                **fields,
            )
            await self.hub.publish(job.id, "job.ready", {"status": "ready", "base_sha": checkout.base_sha})
            log.info("job_ready", job_id=job.id, image=image, base_sha=checkout.base_sha)
            return await self.get(job.id)
        except BaseException as e:
            failure = contract(e) if isinstance(e, FAILURES) else None
            message = failure.message if failure is not None else f"job creation failed: {type(e).__name__}"
            if container_id:
                try:
                    await self.backend.destroy(container_id, volume)
                except FAILURES:
                    log.warning("cleanup_failed", job_id=job.id, container_id=container_id)
            await self.store.update_job(
                job.id,
                audit=AuditEntry(
                    actor=actor,
                    action="job.create",
                    outcome=failure.code if failure is not None else "error",
                    job_id=job.id,
                    details={"repo": job.clone_url, "ref": job.ref, "error": message},
                ),
                status="failed",
                error=message,
            )
            self._ended(job.id)
            await self.hub.publish(job.id, "job.failed", {"status": "failed", "error": message})
            log.info("job_failed", job_id=job.id, error=message)
            raise
        finally:
            await remove_tree(work)

    # --- delete --------------------------------------------------------------------------------

    async def delete(self, job_id: str, actor: Actor) -> None:
        async with self.lock(job_id):
            job = await self.get(job_id)
            if job.status == "destroyed":
                return
            # A failed job keeps its error; its record says it is gone now.
            entry = AuditEntry(actor=actor, action="job.delete", outcome="ok", details={"was": job.status})
            await self._close(job, entry, "destroyed")

    def env_state(self, job_id: str) -> EnvState | None:
        """The job's dependency environment (None: no environment service, or unknown job)."""
        return self.env.state(job_id) if self.env is not None else None

    def _ended(self, job_id: str) -> None:
        self._job_locks.pop(job_id, None)  # an ended job is never locked again (status checks)
        if self.env is not None:
            self.env.forget(job_id)
        if self.on_end is not None:
            self.on_end(job_id)
        for hook in self.end_hooks:
            hook(job_id)

    async def _close(
        self,
        job: JobRecord,
        entry: AuditEntry,
        status: str,
        error: str | None = None,
        *,
        best_effort: bool = False,
        event: dict[str, Any] | None = None,
    ) -> None:
        """End a job (the caller holds its lock): keep the box's log, remove the box and its
        storage, record the new status with its audit record in one transaction, tell listeners.
        `best_effort`: a failing clean-up is logged and the job is ended anyway."""
        if job.container_id:
            await self._save_logs(job)
        for hook in self.on_closing:
            await hook(job.id)
        try:
            # A lint or test box still running mounts the volume: it goes first, whoever made it.
            await self.backend.remove_job_boxes(job.id)
            await self.backend.destroy(job.container_id or box_name(job.id), job.volume or box_name(job.id))
        except FAILURES:
            if not best_effort:
                raise
            log.warning("cleanup_failed", job_id=job.id)
        entry = replace(entry, job_id=job.id, container_id=entry.container_id or job.container_id)
        fields: dict[str, Any] = {"status": status}
        if error is not None:
            fields["error"] = error
        await self.store.update_job(job.id, audit=entry, **fields)
        self._ended(job.id)
        payload: dict[str, Any] = {"status": status, **(event or {})}
        if error is not None and status == "failed":
            payload["error"] = error
        await self.hub.publish(job.id, f"job.{status}", payload)

    async def reap(self, job_id: str) -> bool:
        """The TTL reaper: remove an expired job's box; `reap` is audited with the state change.
        A job busy with a request (its lock held) is left for the next pass."""
        lock = self.lock(job_id)
        if lock.locked():
            return False
        async with lock:
            job = await self.get(job_id)
            if job.status != "ready" or job.expires_at > now():
                return False
            expired = job.expires_at.isoformat().replace("+00:00", "Z")
            entry = AuditEntry(
                actor=SYSTEM, action="reap", outcome="expired", details={"expires_at": expired}
            )
            error = f"the job expired at {expired} (ttl_s) and was reaped"
            await self._close(job, entry, "destroyed", error, event={"reaped": True})
            log.info("job_reaped", job_id=job.id, expires_at=expired)
        return True

    async def fail_interrupted(self, job_id: str) -> None:
        """A job left `creating` by a service that died mid-create: failed, leftovers removed."""
        async with self.lock(job_id):
            job = await self.get(job_id)
            if job.status != "creating":
                return
            message = "the service stopped while the job was being created; create it again"
            entry = AuditEntry(
                actor=SYSTEM, action="job.fail", outcome="interrupted", details={"error": message}
            )
            await self._close(job, entry, "failed", message)
            log.warning("job_interrupted", job_id=job.id)

    async def mark_vanished(self, job_id: str) -> JobRecord:
        return await self.vanished(await self.get(job_id))

    def log_path(self, job_id: str) -> Path:
        return self._logs_dir / f"{job_id}.log"

    async def _save_logs(self, job: JobRecord) -> None:
        assert job.container_id is not None
        try:
            data = await self.backend.logs(job.container_id, 1024 * 1024)
        except FAILURES:
            return
        if data:
            await asyncio.to_thread(self.log_path(job.id).write_bytes, data)

    async def logs(self, job_id: str, actor: Actor | None = None) -> bytes:
        job = await self.get(job_id)
        data: bytes | None = None
        if job.status == "ready" and job.container_id:
            try:
                data = await self.backend.logs(job.container_id, 1024 * 1024)
            except (BackendRefused, SandboxGone):  # the box is being removed: what was saved at its end
                data = None
        if data is None:
            path = self.log_path(job.id)
            data = await asyncio.to_thread(path.read_bytes) if path.exists() else b""
        if actor is not None:
            await self.store.audit(
                AuditEntry(
                    actor=actor,
                    action="job.logs",
                    outcome="ok",
                    job_id=job.id,
                    container_id=job.container_id,
                    bytes_out=len(data),
                    details={"saved": not (job.status == "ready" and job.container_id)},
                )
            )
        return data

    async def vanished(self, job: JobRecord) -> JobRecord:
        """A `ready` job whose box is gone: failed (audit `job.fail`, outcome `vanished`)."""
        async with self.lock(job.id):
            fresh = await self.get(job.id)
            if fresh.status != "ready":
                return fresh
            entry = AuditEntry(
                actor=SYSTEM, action="job.fail", outcome="vanished", details={"error": VANISHED}
            )
            # A stopped box still has its log; whatever is left of it (the volume) goes too.
            await self._close(fresh, entry, "failed", VANISHED, best_effort=True)
            log.warning("job_vanished", job_id=job.id, container_id=job.container_id)
            return await self.get(job.id)
