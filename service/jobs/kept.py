"""The diff a job ends with, kept: so "what did this agent change?" has an answer after the box is gone.

When a job ends while its box still runs (deleted, reaped), the workspace's final diff is taken
through the job's helper (one audited `diff` call by the service) before the box is removed, and
written content-addressed as `<state>/diffs/<sha256 of the document>.json` — the `DiffResult` the
diff route answers, whole patch included, with `kept: true`. The job record names that address;
the outcome trail copies the document into its git repository next to the job's outcome. A job
whose box vanished has nothing left to diff: nothing is kept, and the route says so.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from service.audit import SYSTEM
from service.errors import FAILURES
from service.jobs.execs import Execs
from service.logging import get_logger
from service.models import DiffResult
from service.store import JobRecord, Store
from service.tools.diff import DiffQuery, to_result
from service.tools.registry import DIFF

log = get_logger(__name__)


class KeptDiffs:
    def __init__(self, root: Path, store: Store, execs: Execs):
        self.root = root
        self.store = store
        self._execs = execs
        root.mkdir(parents=True, exist_ok=True)

    def path_of(self, address: str) -> Path:
        return self.root / f"{address}.json"

    async def capture(self, job_id: str) -> None:
        """Before a job's box goes (an `on_closing` hook): keep its final diff. Never raises."""
        job = await self.store.get_job(job_id)
        if job is None or job.status != "ready" or not job.container_id or not job.base_sha:
            return
        cap = self._execs.caps.output
        try:
            changes = await self._execs.run_tool(
                job.id, DIFF, DiffQuery(job.base_sha, cap), SYSTEM, closing=True
            )
        except FAILURES as e:
            log.warning("diff_not_kept", job_id=job.id, error=str(e))
            return
        if changes.timed_out:
            log.warning("diff_not_kept", job_id=job.id, error="the diff timed out")
            return
        result = to_result(job.base_sha, changes, cap).model_copy(update={"kept": True})
        data = result.model_dump_json().encode()
        address = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, self.path_of(address), data)
        await self.store.update_job(job.id, kept_diff=address)
        log.info("diff_kept", job_id=job.id, address=address, files=len(result.files))

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():  # content-addressed: the same bytes are already there
            return
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    async def load(self, job: JobRecord) -> DiffResult | None:
        """The diff an ended job kept; None when it kept none (or its file is gone or altered)."""
        if not job.kept_diff:
            return None
        try:
            data = await asyncio.to_thread(self.path_of(job.kept_diff).read_bytes)
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != job.kept_diff:
            log.error("kept_diff_altered", job_id=job.id, address=job.kept_diff)
            return None
        return DiffResult.model_validate_json(data)
