"""The test runner's verdicts over a fake backend (no engine): new vs old failures, the base run
once per job and selection (cached, dropped when the job ends), flaky re-runs, hangs judged
against base_sha, the run's box (read-only workspace, /env mount, clamped caps, audit)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

from service.audit import Actor
from service.jobs import JobService
from service.models import TestRequest
from service.sandbox.backend import ExecResult, RunSpec
from service.settings import REPO_ROOT, load_images_config
from service.store import JobRecord
from service.tests_run.runner import TestService

SHA = "b" * 40
ACTOR = Actor(name="bot-1", role="bot", tenant="t1")


def junit(**cases: str) -> bytes:
    """name=outcome (passed | failed) → a pytest xunit1 report for tests/test_a.py."""
    body = "".join(
        f'<testcase classname="tests.test_a" name="{n}" file="tests/test_a.py" line="1">'
        + ('<failure message="assert 1 == 2">E assert 1 == 2</failure>' if o == "failed" else "")
        + "</testcase>"
        for n, o in cases.items()
    )
    return f"<testsuites><testsuite>{body}</testsuite></testsuites>".encode()


Answer = Callable[[RunSpec], ExecResult]


class FakeBackend:
    def __init__(self, answer: Answer):
        self.answer = answer
        self.runs: list[RunSpec] = []

    async def run(self, spec: RunSpec) -> ExecResult:
        self.runs.append(spec)
        return self.answer(spec)

    def at(self) -> list[str]:
        return [s.labels["dockyard.test"] for s in self.runs]


def result(stdout: bytes, exit_code: int | None = 1, **kw: Any) -> ExecResult:
    return ExecResult([], exit_code, stdout, b"DOCKYARD_TOOL=image\ntest output\n", 120, 0, len(stdout), **kw)


def service(answer: Answer) -> tuple[TestService, FakeBackend, list[Any], JobRecord]:
    cfg = load_images_config(REPO_ROOT / "sandbox-images" / "images.toml")
    backend = FakeBackend(answer)
    audits: list[Any] = []
    limits = {"memory_mb": 512, "cpus": 1.0, "pids": 128, "disk_mb": 256, "tool_timeout_s": 30}
    now = datetime.now(UTC)
    job = JobRecord(
        "job_1",
        "ready",
        limits,
        {},
        now,
        now,
        base_sha=SHA,
        language="python",
        container_id="c",
        volume="vol-1",
    )

    async def ready_job(job_id: str) -> JobRecord:
        return job

    async def audit(entry: Any) -> None:
        audits.append(entry)

    async def publish(*args: Any) -> None:
        return None

    @contextlib.asynccontextmanager
    async def slot(actor: Actor, kind: str) -> AsyncIterator[None]:
        assert kind == "run"
        yield

    jobs = SimpleNamespace(
        images=SimpleNamespace(
            config=cfg, images={n: SimpleNamespace(tag=f"dockyard/{n}:1") for n in cfg.images}
        ),
        settings=SimpleNamespace(sandbox_user="1000:1000", sandbox_runtime=None),
        backend=backend,
        store=SimpleNamespace(audit=audit),
        hub=SimpleNamespace(publish=publish),
        limiter=SimpleNamespace(slot=slot),
        env=None,
        end_hooks=[],
        ready_job=ready_job,
    )
    svc = TestService(cast(JobService, jobs))

    async def tree(job: JobRecord, actor: Actor) -> tuple[set[str], list[str]]:
        return {"pytest.ini"}, ["pytest.ini", "tests/test_a.py"]

    async def texts(job: JobRecord, names: set[str], actor: Actor) -> dict[str, str]:
        return {"pytest.ini": "[pytest]\n"}

    svc._tree = tree  # type: ignore[method-assign]
    svc._texts = texts  # type: ignore[method-assign]
    return svc, backend, audits, job


async def test_new_and_old_failures_and_the_base_run_cached_until_the_job_ends() -> None:
    def answer(spec: RunSpec) -> ExecResult:
        if spec.labels["dockyard.test"] == "base_sha":
            return result(junit(test_ok="passed", test_new="passed", test_old="failed"))
        return result(junit(test_ok="passed", test_new="failed", test_old="failed"))

    svc, backend, audits, job = service(answer)
    first = await svc.test("job_1", TestRequest(), ACTOR)
    assert first.status == "failed" and first.base_checked and first.rule == "pytest.ini"
    assert {f.id: (f.new, f.flaky) for f in first.failures} == {
        "tests/test_a.py::test_new": (True, False),
        "tests/test_a.py::test_old": (False, False),
    }
    assert first.counts.model_dump() == {"passed": 1, "failed": 2, "skipped": 0, "errors": 0}
    assert first.output == "test output\n" and first.tool_source == "image"
    assert backend.at() == ["workspace", "base_sha", "rerun"]
    assert backend.runs[2].argv[-1] == "tests/test_a.py::test_new", "the re-run is only the new failure"
    second = await svc.test("job_1", TestRequest(), ACTOR)
    assert second.status == "failed" and backend.at()[3:] == ["workspace", "rerun"], "base cached"
    svc.forget("job_1")
    await svc.test("job_1", TestRequest(), ACTOR)
    assert backend.at()[5:] == ["workspace", "base_sha", "rerun"], "forgotten with the job"
    assert {a.action for a in audits} == {"test"} and len(audits) == 8
    assert [a.details["at"] for a in audits[:3]] == ["workspace", "base_sha", "rerun"]
    assert audits[0].argv[:3] == ["python", "-m", "pytest"], "the runner's argv, not the copy script"
    box = backend.runs[0]
    assert box.workspace_volume == job.volume and box.workdir == "/tmp" and box.tmp_exec
    assert box.argv[:2] == ["sh", "-c"] and box.argv[4] == "workspace" and backend.runs[1].argv[4] == SHA
    assert box.env["DOCKYARD_REPORT"] == "/tmp/.dockyard/report.xml"
    assert box.tmp_mb == 256 + 256 and box.limits.memory_mb == 512 and box.mounts == ()


async def test_a_new_failure_that_passes_on_the_rerun_is_flaky_and_not_counted() -> None:
    def answer(spec: RunSpec) -> ExecResult:
        at = spec.labels["dockyard.test"]
        return result(junit(test_a="passed" if at != "workspace" else "failed"))

    svc, _, _, _ = service(answer)
    got = await svc.test("job_1", TestRequest(), ACTOR)
    assert got.status == "passed"
    assert [(f.id, f.new, f.flaky) for f in got.failures] == [("tests/test_a.py::test_a", True, True)]


async def test_a_hang_fails_only_when_base_finished_and_timeouts_are_clamped() -> None:
    base_hangs = False

    def answer(spec: RunSpec) -> ExecResult:
        if spec.labels["dockyard.test"] == "base_sha" and not base_hangs:
            return result(junit(test_a="passed"), exit_code=0)
        return result(b"", exit_code=None, timed_out=True)

    svc, backend, _, _ = service(answer)
    hung = await svc.test("job_1", TestRequest(timeout_s=10**6), ACTOR)
    assert hung.timed_out and hung.status == "failed" and hung.base_checked
    assert hung.clamped == ["timeout_s"] and hung.limits is not None and hung.limits.timeout_s == 300
    assert backend.runs[0].timeout_s == 300
    svc.forget("job_1")
    base_hangs = True
    both = await svc.test("job_1", TestRequest(timeout_s=5), ACTOR)
    assert both.status == "error" and not both.base_checked and "at base_sha too" in (both.error or "")
    assert both.clamped == [] and backend.runs[-1].timeout_s == 5


async def test_no_tests_collected_is_a_skipped_reason_not_a_failure() -> None:
    svc, backend, _, _ = service(lambda spec: result(b"<testsuites><testsuite/></testsuites>", exit_code=5))
    got = await svc.test("job_1", TestRequest(), ACTOR)
    assert got.status == "passed" and (got.skipped_reason or "").startswith("no tests found")
    assert backend.at() == ["workspace"], "nothing failed: no base run"


async def test_a_runner_without_cases_is_judged_by_its_exit_code_against_base() -> None:
    def answer(spec: RunSpec) -> ExecResult:
        return result(b"", exit_code=0 if spec.labels["dockyard.test"] == "base_sha" else 2)

    svc, _, _, _ = service(answer)
    got = await svc.test("job_1", TestRequest(), ACTOR)
    assert got.status == "failed" and [(f.id, f.new) for f in got.failures] == [("(exit status)", True)]
    assert "exit 2" in got.failures[0].message


async def test_a_failing_exit_with_only_passing_cases_is_one_exit_status_failure() -> None:
    def answer(spec: RunSpec) -> ExecResult:
        base = spec.labels["dockyard.test"] == "base_sha"
        return result(junit(test_a="passed"), exit_code=0 if base else 3)

    svc, _, _, _ = service(answer)
    got = await svc.test("job_1", TestRequest(), ACTOR)
    assert got.status == "failed" and got.counts.passed == 1
    assert [(f.id, f.new) for f in got.failures] == [("(exit status)", True)]
    assert "no failing test case was reported" in got.failures[0].message
