"""JobService over the in-memory backend (no engine): create → ready, a tool call's audit record,
delete, admission (429), a box that vanished (failed), delete during create, the backend away
(503 docker_unavailable through the one mapping)."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from service.errors import FileNotFound, HostCapacity, JobNotReady, TooManyJobs, contract
from service.jobs import VANISHED
from service.models import ReadFileRequest
from service.sandbox.backend import ExecResult
from service.sandbox.errors import (
    BackendRefused,
    BackendUnavailable,
    ImageNotBuilt,
    SandboxError,
    SandboxGone,
    WorkspaceTooLarge,
)
from service.sandbox.labels import EXPIRES_LABEL, INSTANCE_LABEL, JOB_LABEL, MANAGED_LABEL, box_name
from service.tools.registry import READ_FILE
from tests.conftest import FixtureRepo
from tests.fakes.jobs import BOT, INSTANCE, Harness, harness

README = ReadFileRequest(path="README.md")


def stdout(result: ExecResult) -> bytes:
    return result.stdout


async def ready(h: Harness, repo: FixtureRepo, **kw: object) -> str:
    job = await h.jobs.create(h.request(repo.url, **kw), BOT)
    assert job.status == "ready", job
    return job.id


async def test_create_makes_a_ready_job_in_a_labelled_box(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        job = await h.jobs.create(h.request(fixture_repo.url, labels={"pr": "7"}), BOT)
        assert job.status == "ready" and job.base_sha == fixture_repo.sha
        box = h.backend.job_box(job.id)
        assert box is not None and box.running
        assert (job.container_id, job.volume) == (box.id, box_name(job.id))
        assert box.volume in h.backend.volumes
        # the workspace is the checkout at the ref: the tar handed to the backend holds its files
        assert box.files["README.md"] == fixture_repo.files["README.md"]
        assert box.labels["pr"] == "7" and box.labels[JOB_LABEL] == job.id
        assert box.labels[INSTANCE_LABEL] == INSTANCE and box.labels[MANAGED_LABEL] == "true"
        assert box.labels[EXPIRES_LABEL] == job.expires_at.isoformat().replace("+00:00", "Z")
        [record] = await h.audits(job.id, "job.create")
        assert (record.outcome, record.container_id) == ("ok", box.id)
        assert record.details["base_sha"] == fixture_repo.sha
        assert (await h.jobs.get_checked(job.id)).status == "ready"
        # no clone folder is left behind once the box holds the tree
        assert not any((h.jobs.work_root).iterdir())


async def test_a_tool_call_runs_in_the_box_and_is_one_audit_record(
    tmp_path: Path, fixture_repo: FixtureRepo
) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        job_id = await ready(h, fixture_repo)
        got = await h.jobs.run_tool(job_id, READ_FILE, README, BOT)
        assert got.content.encode() == fixture_repo.files["README.md"]
        [record] = await h.audits(job_id, "tool.read_file")
        assert (record.outcome, record.argv, record.exit_code) == (
            "ok",
            ["dockyard-tool", "read_file", "README.md"],
            0,
        )
        assert record.details["path"] == "README.md" and record.details["timed_out"] is False
        assert record.details["content_sha256"] == hashlib.sha256(fixture_repo.files["README.md"]).hexdigest()
        with pytest.raises(FileNotFound):
            await h.jobs.run_tool(job_id, READ_FILE, ReadFileRequest(path="nope"), BOT)
        records = await h.audits(job_id, "tool.read_file")
        assert [r.outcome for r in records] == ["ok", "file_not_found"]
        await h.jobs.run_tool(job_id, READ_FILE, README, BOT)
        assert len(h.backend.helpers) == 1  # one helper served every call of the job


async def test_delete_removes_box_and_volume_and_keeps_the_log(
    tmp_path: Path, fixture_repo: FixtureRepo
) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        job_id = await ready(h, fixture_repo)
        await h.jobs.delete(job_id, BOT)
        job = await h.jobs.get(job_id)
        assert job.status == "destroyed"
        assert h.backend.job_box(job_id) is None and box_name(job_id) not in h.backend.volumes
        assert await h.jobs.logs(job_id) == b"box started\n"  # saved before the box went
        [record] = await h.audits(job_id, "job.delete")
        assert (record.outcome, record.details) == ("ok", {"was": "ready"})
        await h.jobs.delete(job_id, BOT)  # deleting again is a no-op: no second record
        assert len(await h.audits(job_id, "job.delete")) == 1
        with pytest.raises(JobNotReady, match="is destroyed"):
            await h.jobs.run_tool(job_id, READ_FILE, README, BOT)
        assert await h.audits(job_id, "tool.read_file") == []  # refused before any exec


async def test_over_the_job_cap_is_429_and_nothing_is_made(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent, max_jobs=1) as h:
        first = await ready(h, fixture_repo)
        with pytest.raises(TooManyJobs) as refused:
            await h.jobs.create(h.request(fixture_repo.url), BOT)
        e = refused.value
        assert (e.status, e.code, e.headers()) == (429, "too_many_jobs", {"Retry-After": "30"})
        assert e.details == {"live_jobs": 1, "max_jobs": 1}
        assert [r.outcome for r in await h.audits(action="job.create")] == ["ok", "too_many_jobs"]
        assert len(h.backend.boxes) == 1 and len(await h.store.list_jobs()) == 1
        await h.jobs.delete(first, BOT)
        await ready(h, fixture_repo)  # a slot is free again


async def test_over_the_host_budget_is_429_host_capacity(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent, host_budget_mb=256) as h:
        with pytest.raises(HostCapacity) as refused:
            await h.jobs.create(h.request(fixture_repo.url), BOT)
        assert (refused.value.status, refused.value.code) == (429, "host_capacity_exhausted")
        assert refused.value.details["budget_mb"] == 256 and refused.value.details["needed_mb"] > 256
        assert h.backend.boxes == {} and await h.store.list_jobs() == []


async def test_a_box_that_vanished_fails_its_job(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        job_id = await ready(h, fixture_repo)
        h.backend.vanish(job_id)
        job = await h.jobs.get_checked(job_id)
        assert (job.status, job.error) == ("failed", VANISHED)
        assert box_name(job_id) not in h.backend.volumes  # what was left of it is removed
        [record] = await h.audits(job_id, "job.fail")
        assert record.outcome == "vanished"


async def test_a_tool_call_into_a_stopped_box_fails_the_job(
    tmp_path: Path, fixture_repo: FixtureRepo
) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        job_id = await ready(h, fixture_repo)
        h.backend.stop(job_id)
        with pytest.raises(JobNotReady, match="is failed") as refused:
            await h.jobs.run_tool(job_id, READ_FILE, README, BOT)
        assert (refused.value.status, refused.value.code) == (409, "job_not_ready")
        [record] = await h.audits(job_id, "tool.read_file")  # the exec is still one record
        assert record.outcome == "job_not_ready" and record.argv == [
            "dockyard-tool",
            "read_file",
            "README.md",
        ]
        job = await h.jobs.get(job_id)
        assert (job.status, job.error) == ("failed", VANISHED)
        assert h.backend.job_box(job_id) is None


async def test_delete_during_create_waits_and_leaves_nothing(
    tmp_path: Path, fixture_repo: FixtureRepo
) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        h.backend.hold_create = asyncio.Event()
        creating = asyncio.create_task(h.jobs.create(h.request(fixture_repo.url), BOT))
        await asyncio.wait_for(h.backend.creating.wait(), 30)
        [job] = await h.store.list_jobs(statuses=["creating"])
        deleting = asyncio.create_task(h.jobs.delete(job.id, BOT))
        await asyncio.sleep(0.05)
        assert not deleting.done()  # the build holds the job
        creating.cancel()  # the caller hangs up: the build goes on (shielded), so nothing is half made
        h.backend.hold_create.set()
        await asyncio.wait_for(deleting, 30)
        with pytest.raises(asyncio.CancelledError):
            await creating
        final = await h.jobs.get(job.id)
        assert final.status == "destroyed"
        assert h.backend.boxes == {} and h.backend.volumes == {}
        [made] = await h.audits(job.id, "job.create")
        [gone] = await h.audits(job.id, "job.delete")
        assert made.outcome == "ok" and gone.details == {"was": "ready"}


async def test_backend_away_at_create_fails_the_job_as_docker_unavailable(
    tmp_path: Path, fixture_repo: FixtureRepo
) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        h.backend.available = False
        with pytest.raises(BackendUnavailable) as away:
            await h.jobs.create(h.request(fixture_repo.url), BOT)
        wire = contract(away.value)  # what the HTTP edge answers
        assert (wire.status, wire.code) == (503, "docker_unavailable")
        [job] = await h.store.list_jobs()
        assert (job.status, job.error) == ("failed", "the fake backend is away")
        [record] = await h.audits(job.id, "job.create")
        assert record.outcome == "docker_unavailable"


async def test_missing_image_fails_the_job_as_image_missing(
    tmp_path: Path, fixture_repo: FixtureRepo
) -> None:
    async with harness(tmp_path / "state", fixture_repo.path.parent) as h:
        h.backend.images = set()
        with pytest.raises(ImageNotBuilt):
            await h.jobs.create(h.request(fixture_repo.url), BOT)
        [job] = await h.store.list_jobs()
        assert job.status == "failed" and "is not built" in (job.error or "")
        assert [r.outcome for r in await h.audits(job.id, "job.create")] == ["image_missing"]


@pytest.mark.parametrize(
    ("neutral", "status", "code"),
    [
        (BackendUnavailable, 503, "docker_unavailable"),
        (SandboxGone, 409, "job_not_ready"),
        (ImageNotBuilt, 503, "image_missing"),
        (WorkspaceTooLarge, 413, "payload_too_large"),
        (BackendRefused, 500, "sandbox_error"),
        (SandboxError, 500, "sandbox_error"),
    ],
)
def test_each_neutral_error_maps_to_one_contract_code(
    neutral: type[SandboxError], status: int, code: str
) -> None:
    e = neutral("what happened", {"k": 1})
    assert not hasattr(e, "status")  # a neutral error carries no HTTP status
    wire = contract(e)
    assert (wire.status, wire.code, wire.message, wire.details) == (status, code, "what happened", {"k": 1})
    assert wire.__cause__ is e


async def test_the_http_edge_answers_a_neutral_error_with_its_contract_code() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from service.api.middleware import errors_middleware

    async def away(request: web.Request) -> web.Response:
        raise BackendUnavailable("the engine is unreachable", {"tried": 1})

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_get("/away", away)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/away")
        assert response.status == 503
        assert await response.json() == {
            "error": {
                "code": "docker_unavailable",
                "message": "the engine is unreachable",
                "details": {"tried": 1},
            }
        }
