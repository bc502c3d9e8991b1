"""The reaper over the in-memory backend (no engine): TTL expiry, and the reconcile after a
restart — live boxes adopted, vanished or stopped ones failed, an interrupted create failed,
orphans carrying our instance label removed, another instance's boxes left alone."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from service import metrics
from service.audit import AuditRecord
from service.jobs import VANISHED
from service.reaper import Reaper
from service.sandbox.labels import INSTANCE_LABEL, JOB_LABEL, MANAGED_LABEL, box_name
from service.store import JobRecord, now
from tests.conftest import FixtureRepo
from tests.fakes.jobs import BOT, INSTANCE, Harness, harness

OURS = {MANAGED_LABEL: "true", INSTANCE_LABEL: INSTANCE}


async def ready(h: Harness, repo: FixtureRepo) -> str:
    job = await h.jobs.create(h.request(repo.url), BOT)
    assert job.status == "ready", job
    return job.id


def orphans(records: list[AuditRecord]) -> set[tuple[str | None, str]]:
    return {(r.job_id, r.details["name"]) for r in records if r.action == "reap" and r.outcome == "orphan"}


async def test_an_expired_job_is_reaped_and_a_live_one_kept(
    tmp_path: Path, fixture_repo: FixtureRepo
) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        old, young = await ready(h, fixture_repo), await ready(h, fixture_repo)
        await h.store.update_job(old, expires_at=now() - timedelta(seconds=1))
        reaper = Reaper(h.jobs, h.backend, INSTANCE, 3600)
        await reaper.tick()
        reaped = await h.jobs.get(old)
        assert reaped.status == "destroyed" and "expired" in (reaped.error or "")
        assert h.backend.job_box(old) is None and box_name(old) not in h.backend.volumes
        [record] = await h.audits(old, "reap")
        assert record.outcome == "expired"
        assert (await h.jobs.get(young)).status == "ready" and h.backend.job_box(young) is not None
        assert await h.audits(young, "reap") == []


async def test_reconcile_after_a_restart(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        live, gone, stopped, ended = [await ready(h, fixture_repo) for _ in range(4)]
        await h.jobs.delete(ended, BOT)
        live_box = h.backend.job_box(live)
        assert live_box is not None
        h.backend.vanish(gone)
        h.backend.stop(stopped)
        # leftovers of the crashed process: a linter box of an ended job, a volume nobody owns,
        # a create cut off half way; and another service's box on the same engine
        long_ago = time.time() - 3600
        h.backend.plant_box(f"{box_name(ended)}-lint-ruff", {**OURS, JOB_LABEL: ended}, created=long_ago)
        h.backend.plant_volume(box_name("job_dead"), {**OURS, JOB_LABEL: "job_dead"})
        other = {MANAGED_LABEL: "true", INSTANCE_LABEL: "dy-other", JOB_LABEL: "job_theirs"}
        h.backend.plant_box(box_name("job_theirs"), other, created=long_ago)
        h.backend.plant_volume(box_name("job_theirs"), other)
        cut_off = JobRecord(
            "job_cutoff", "creating", {}, {}, now() - timedelta(minutes=1), now() + timedelta(hours=1)
        )
        await h.store.insert_job(cut_off)
        adopted_before = metrics.ADOPTED._value.get()

        reaper = Reaper(h.restart(), h.backend, INSTANCE, 3600)  # a new process, same store + engine
        await reaper.first_pass()

        assert reaper.reconciled
        assert metrics.ADOPTED._value.get() == adopted_before + 1
        job = await h.jobs.get(live)
        assert (job.status, job.container_id) == ("ready", live_box.id)
        assert h.backend.job_box(live) is live_box and live_box.running
        for vanished in (gone, stopped):
            job = await h.jobs.get(vanished)
            assert (job.status, job.error) == ("failed", VANISHED)
            assert h.backend.job_box(vanished) is None and box_name(vanished) not in h.backend.volumes
        cut = await h.jobs.get("job_cutoff")
        assert cut.status == "failed" and "service stopped" in (cut.error or "")
        assert [r.outcome for r in await h.audits("job_cutoff", "job.fail")] == ["interrupted"]
        names = {b.name for b in h.backend.boxes.values()}
        assert names == {box_name(live), box_name("job_theirs")}  # the other service's box stays
        assert set(h.backend.volumes) == {box_name(live), box_name("job_theirs")}
        records = await h.audits()
        true_orphans = {(ended, f"{box_name(ended)}-lint-ruff"), ("job_dead", box_name("job_dead"))}
        assert true_orphans <= orphans(records)
        # The pass lists the engine before it judges the jobs, so the leftovers of the two jobs it
        # failed (already removed by their job.fail) are recorded as orphans too (as with Docker).
        # No record names the live job or the other service's boxes.
        assert {j for j, _ in orphans(records) - true_orphans} <= {gone, stopped}

        await reaper.tick()  # a second pass finds everything in order: nothing more happens
        assert len(await h.audits()) == len(records)
        assert (await h.jobs.get(live)).status == "ready"


async def test_a_linter_box_of_a_live_job_made_by_this_process_is_left(
    tmp_path: Path, fixture_repo: FixtureRepo
) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        job_id = await ready(h, fixture_repo)
        reaper = Reaper(h.jobs, h.backend, INSTANCE, 3600)
        h.backend.plant_box(f"{box_name(job_id)}-lint-ruff", {**OURS, JOB_LABEL: job_id})  # in flight
        stale = h.backend.plant_box(f"{box_name(job_id)}-lint-old", {**OURS, JOB_LABEL: job_id}, created=1.0)
        await reaper.tick()
        names = {b.name for b in h.backend.boxes.values()}
        assert names == {box_name(job_id), f"{box_name(job_id)}-lint-ruff"}
        assert orphans(await h.audits()) == {(job_id, stale.name)}


async def test_backend_away_at_start_defers_the_reconcile(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        job_id = await ready(h, fixture_repo)
        h.backend.vanish(job_id)
        h.backend.available = False
        reaper = Reaper(h.restart(), h.backend, INSTANCE, 3600)
        await reaper.first_pass()  # does not raise: the loop tries again
        assert not reaper.reconciled
        assert (await h.jobs.get(job_id)).status == "ready"  # nothing judged while the engine is away
        h.backend.available = True
        await reaper.tick()
        assert reaper.reconciled
        assert (await h.jobs.get(job_id)).status == "failed"
