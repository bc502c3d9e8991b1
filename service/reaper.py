"""Reconcile-by-labels and the TTL reaper: the store and the engine agree, whatever happened.

At start-up (before the first request) and then every `DOCKYARD_REAP_INTERVAL_S`:

- a `ready` job whose container runs is adopted; one whose container is gone or stopped becomes
  `failed` (what is left of it is removed);
- a `creating` job from before this process started was cut off by a crash: `failed`, leftovers
  removed;
- a labelled container or volume of THIS service that no live job owns is removed (audit `reap`,
  outcome `orphan`): a job's own box is `dockyard-<job>`, anything else (a linter box
  `dockyard-<job>-lint-…`) is an orphan once its job is over or when it predates this process;
- a live job past its `expires_at` is reaped (audit `reap`, outcome `expired`);
- `Idempotency-Key` answers past `DOCKYARD_IDEMPOTENCY_TTL_S` are forgotten.

"This service" is the `dockyard.instance` label: an id kept in the state dir, so two services on
one engine (or a test's second instance) never remove each other's boxes. Unlabelled legacy boxes
count as ours only when our store knows their job.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Awaitable
from pathlib import Path

from service import metrics
from service.audit import SYSTEM, AuditEntry
from service.clone import sweep_work
from service.errors import FAILURES
from service.jobs import JobService
from service.logging import get_logger
from service.sandbox.backend import BoxInfo, SandboxBackend, VolumeInfo
from service.sandbox.errors import BackendUnavailable
from service.sandbox.labels import INSTANCE_LABEL, JOB_LABEL, box_name
from service.store import LIVE_STATUSES, JobRecord, now

log = get_logger(__name__)

INSTANCE_FILE = "instance"


def instance_id(state_dir: Path) -> str:
    """This service's id, made once and kept in the state dir (labels its boxes)."""
    path = state_dir / INSTANCE_FILE
    try:
        value = path.read_text().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    value = "dy-" + secrets.token_hex(8)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value + "\n")
    os.replace(tmp, path)
    return value


class Reaper:
    def __init__(self, jobs: JobService, backend: SandboxBackend, instance: str, interval_s: float):
        self.jobs = jobs
        self.store = jobs.store
        self.backend = backend
        self.instance = instance
        self.interval_s = interval_s
        self.started_at = time.time()
        self.reconciled = False
        self._engine_down = False

    # --- ownership -----------------------------------------------------------------------------

    async def _ours(self, labels: dict[str, str]) -> bool:
        owner = labels.get(INSTANCE_LABEL)
        if owner is not None:
            return owner == self.instance
        job_id = labels.get(JOB_LABEL)
        return job_id is not None and await self.store.get_job(job_id) is not None

    async def _live(self, job_id: str | None) -> JobRecord | None:
        if job_id is None:
            return None
        job = await self.store.get_job(job_id)
        return job if job is not None and job.live else None

    # --- one pass ------------------------------------------------------------------------------

    async def tick(self) -> None:
        """One reconcile + reap pass. Raises BackendUnavailable when the backend is away."""
        await self._sweep_work()
        forgotten = await self.store.sweep_idempotency()  # Idempotency-Keys past their TTL
        if forgotten:
            log.info("idempotency_keys_expired", count=forgotten)
        # Jobs first, then the engine: a box listed later than its job can only be newer.
        live = await self.store.list_jobs(statuses=list(LIVE_STATUSES), limit=1_000_000)
        containers, volumes = await self.backend.list_managed()
        by_name = {c.name: c for c in containers}
        for job in live:
            await self._one_job(self._check_job(job, by_name), job.id)
        for c in containers:
            await self._sweep_container(c)
        for v in volumes:
            await self._sweep_volume(v)
        moment = now()
        for job in live:  # reap() reads the job again under its lock (it may have ended meanwhile)
            if job.status == "ready" and job.expires_at <= moment:
                await self._one_job(self.jobs.reap(job.id), job.id)
        if not self.reconciled:
            self.reconciled = True
            log.info("reconciled", live_jobs=len(live), containers=len(containers), volumes=len(volumes))

    @staticmethod
    async def _one_job(step: Awaitable[object], job_id: str) -> None:
        """One job's step of a pass: its failure is logged and the pass goes on to the next job
        (an engine that is away ends the pass)."""
        try:
            await step
        except BackendUnavailable:
            raise
        except FAILURES as e:
            log.warning("reconcile_step_failed", job_id=job_id, error=e.message)

    async def _check_job(self, job: JobRecord, by_name: dict[str, BoxInfo]) -> None:
        box = by_name.get(box_name(job.id))
        if job.status == "creating":
            if job.created_at.timestamp() < self.started_at:
                await self.jobs.fail_interrupted(job.id)
            return
        if box is not None and box.running and (job.container_id in (None, box.id)):
            if not self.reconciled:
                metrics.ADOPTED.inc()
                log.info("job_adopted", job_id=job.id, container_id=box.id)
            return
        await self.jobs.mark_vanished(job.id)

    async def _sweep_work(self) -> None:
        """Clone folders no build of this process is using (a crash, a clone that could not be
        removed) go. The folder is listed BEFORE the jobs are read: a folder is made after its job
        is stored, so every folder listed belongs to a job the read below sees."""
        root = self.jobs.work_root
        listed = await asyncio.to_thread(lambda: set(os.listdir(root)) if root.is_dir() else set())
        if not listed:
            return
        creating = await self.store.list_jobs(statuses=["creating"], limit=1_000_000)
        keep = {j.id for j in creating if j.created_at.timestamp() >= self.started_at - 1}
        removed = await sweep_work(root, listed, keep)
        if removed:
            log.info("work_swept", removed=removed)

    async def _sweep_container(self, c: BoxInfo) -> None:
        if not await self._ours(c.labels):
            return
        job_id = c.labels.get(JOB_LABEL)
        job = await self._live(job_id)  # read again: a job may have started since the listing
        if job is not None:
            if c.name == box_name(job.id):
                return  # the job's own box (checked above)
            if c.created >= self.started_at - 1:
                return  # a linter box of a live job, made by this process: in flight
        await self._remove_orphan(job_id, container=c)

    async def _sweep_volume(self, v: VolumeInfo) -> None:
        if not await self._ours(v.labels):
            return
        job = await self._live(v.labels.get(JOB_LABEL))
        if job is not None and v.name == (job.volume or box_name(job.id)):
            return
        await self._remove_orphan(v.labels.get(JOB_LABEL), volume=v)

    async def _remove_orphan(
        self,
        job_id: str | None,
        *,
        container: BoxInfo | None = None,
        volume: VolumeInfo | None = None,
    ) -> None:
        what = "container" if container is not None else "volume"
        name = container.name if container is not None else volume.name if volume is not None else "?"
        try:
            await self.backend.destroy(
                container.id if container is not None else None, volume.name if volume is not None else None
            )
        except BackendUnavailable:
            raise
        except FAILURES as e:  # e.g. a volume still in use by a box being removed: next pass
            log.warning("orphan_removal_failed", job_id=job_id, name=name, error=e.message)
            return
        await self.store.audit(
            AuditEntry(
                actor=SYSTEM,
                action="reap",
                outcome="orphan",
                job_id=job_id,
                container_id=container.id if container is not None else None,
                details={"kind": what, "name": name},
            )
        )
        log.info("orphan_removed", job_id=job_id, kind=what, name=name)

    # --- the loop ------------------------------------------------------------------------------

    async def first_pass(self, timeout_s: float = 30.0) -> None:
        """The start-up reconcile; an engine that is away leaves it to the loop."""
        try:
            await asyncio.wait_for(self.tick(), timeout_s)
        except (BackendUnavailable, TimeoutError) as e:
            self._engine_down = True
            log.warning("reconcile_deferred", error=str(e) or type(e).__name__)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.tick()
                if self._engine_down:
                    log.info("engine_back")
                self._engine_down = False
            except BackendUnavailable as e:
                if not self._engine_down:
                    log.warning("reaper_engine_unavailable", error=e.message)
                self._engine_down = True
            except Exception:
                log.exception("reaper_failed")
