"""A JobService over the in-memory backend and a real store on a temp state dir: no engine.

`harness(state_dir, repo, ...)` yields the service, the fake backend and the store; `restart()`
makes a new service (a new process) over the same store and the same backend, as after a crash.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.audit import Actor, AuditRecord
from service.events import EventHub
from service.images import resolve_images
from service.jobs import ImageState, JobService
from service.models import JobCreate
from service.settings import Settings, load_images_config
from service.store import Store
from tests.fakes.backend import FakeBackend

BOT = Actor("bot-1", "bot", "team-a")
INSTANCE = "dy-unit"


@dataclass
class Harness:
    settings: Settings
    store: Store
    backend: FakeBackend
    images: ImageState
    jobs: JobService
    services: list[JobService] = field(default_factory=list)

    def restart(self) -> JobService:
        """A new JobService (a restarted process) over the same store and backend."""
        jobs = JobService(self.settings, self.store, self.backend, self.images, EventHub(self.store))
        self.services.append(jobs)
        self.jobs = jobs
        return jobs

    def request(self, url: str, **kw: Any) -> JobCreate:
        return JobCreate.model_validate({"clone_url": url, **kw})

    async def audits(self, job_id: str | None = None, action: str | None = None) -> list[AuditRecord]:
        found = await self.store.audit_records(job_id=job_id)
        return [r for r in found if action is None or r.action == action]


@asynccontextmanager
async def harness(state_dir: Path, repo_root: Path, **settings: Any) -> AsyncIterator[Harness]:
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "api_tokens": "t" * 20 + ":bot",
        "clone_file_roots": str(repo_root),
        "host_budget_mb": 1_000_000,
        "env_ca_bundle": None,
        **settings,
    }
    s = Settings(**values)
    cfg = load_images_config(s.images_config)
    images = ImageState(cfg, resolve_images(cfg, s.images_config, s))
    store = await Store.open(s.state_dir)
    backend = FakeBackend(instance=INSTANCE)
    h = Harness(s, store, backend, images, JobService(s, store, backend, images, EventHub(store)))
    try:
        yield h
    finally:
        for jobs in [h.jobs, *h.services]:
            await jobs.drain(5)
        await store.close()
        # A harness leaves many cyclic objects (settings, image state, services); collected here,
        # a full collection never lands in a later test's timing window (test_tenants: 50 ms).
        gc.collect()
