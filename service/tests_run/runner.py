"""Running a repository's tests: a fresh hardened box per run, failures judged new against base_sha.

Each run is a one-shot box from the language image: network none, uid 1000, caps dropped, the
job's workspace mounted READ-ONLY and copied into the box's own /tmp (box.py), the dependency
environment read-only at /env. The same selection runs at base_sha only when the current run has
failures (once per job and selection, cached until the job ends); a new failure is re-run once and
reported `flaky` when it then passes.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field, replace
from typing import ClassVar, Literal

from service.audit import Actor, AuditEntry
from service.errors import FAILURES, contract
from service.jobs import JobService
from service.logging import get_logger
from service.models import (
    ListDirectoryRequest,
    ReadFileRequest,
    TestCounts,
    TestFailure,
    TestLimitsOut,
    TestRequest,
    TestResult,
)
from service.sandbox.backend import ExecResult, RunSpec, VolumeMount
from service.settings import Limits
from service.store import JobRecord
from service.tests_run import box
from service.tests_run.detect import (
    REPORT,
    RULE_FILES,
    Selection,
    Skip,
    check_paths,
    narrow,
    rerun_argv,
    select,
)
from service.tests_run.parsers import PARSERS, Case, Report
from service.tools.registry import LIST_DIRECTORY, READ_FILE

log = get_logger(__name__)

REPORT_CAP = 8 * 1024 * 1024  # room for the runner's report on top of the output cap
CONFIG_READ_CAP = 256 * 1024
EXIT_CASE = "(exit status)"
NO_TESTS_EXIT = {"junit_xml": (0, 5)}  # pytest: 5 = no tests collected
At = Literal["workspace", "base_sha", "rerun"]


@dataclass
class _Run:
    result: ExecResult | None
    report: Report
    tool: str = "image"
    output: str = ""
    output_truncated: bool = False
    error: str | None = None  # no verdict at all (the box failed, the copy failed)

    @property
    def completed(self) -> bool:
        r = self.result
        return self.error is None and r is not None and not r.timed_out and not r.oom_killed

    def outcomes(self) -> dict[str, str]:
        return {c.id: c.outcome for c in self.report.cases}


@dataclass
class _Base:
    outcomes: dict[str, str] = field(default_factory=dict)
    completed: bool = False
    note: str | None = None


@dataclass(frozen=True)
class _Plan:
    job: JobRecord
    sel: Selection
    image: str  # the resolved tag
    limits: Limits
    tmp_mb: int
    mounts: tuple[VolumeMount, ...]


def _with_exit_case(run: _Run, parser: str) -> list[Case]:
    """The run's cases, plus one judged by the exit code when the run failed without a failing case
    (a runner that prints no machine output, a script's second command, a coverage threshold)."""
    cases = list(run.report.cases)
    r = run.result
    if r is None or not run.completed or any(c.failing for c in cases):
        return cases
    if r.exit_code in NO_TESTS_EXIT.get(parser, (0,)):
        return cases
    tail = "\n".join(run.output.strip().splitlines()[-20:]) or "no output"
    why = run.report.error or (
        "no failing test case was reported" if cases else "the runner reported no test cases"
    )
    return [Case(EXIT_CASE, "failed", f"exit {r.exit_code} ({why}):\n{tail}"[:2000])]


# (job, image, argv, environment volumes): what one base_sha run was
_BaseKey = tuple[str, str, tuple[str, ...], tuple[str, ...]]


class TestService:
    __test__: ClassVar[bool] = False  # not a pytest class

    def __init__(self, jobs: JobService):
        self.jobs = jobs
        self._base: dict[_BaseKey, _Base] = {}
        self._base_locks: dict[_BaseKey, asyncio.Lock] = {}
        jobs.end_hooks.append(self.forget)

    def forget(self, job_id: str) -> None:
        """The job ended: its cached base runs go."""
        for key in [k for k in self._base_locks if k[0] == job_id]:
            self._base_locks.pop(key, None)
            self._base.pop(key, None)

    # --- the route ------------------------------------------------------------------------------

    async def test(self, job_id: str, req: TestRequest, actor: Actor) -> TestResult:
        jobs = self.jobs
        job = await jobs.ready_job(job_id)
        cfg = jobs.images.config
        paths = check_paths(req.paths) if req.paths else []
        language = job.language or cfg.default_language
        root_files, tree = await self._tree(job, actor)
        texts = await self._texts(job, root_files & set(RULE_FILES), actor)
        picked = select(cfg, language, root_files=root_files, tree=tree, texts=texts, command=req.command)
        env_status = await self._env_status(job.id, picked)
        if isinstance(picked, Skip):
            return self._skipped(picked.reason, language, env_status)
        sel = picked
        plan, applied, clamped = self._plan(job, sel, req.timeout_s)
        argv = narrow(sel, paths)

        current = await self._run(plan, argv, "workspace", actor)
        result = current.result
        answer = TestResult(
            status="passed",
            language=language,
            command=argv,
            rule=sel.rule,
            image=plan.image,
            tool_source=current.tool,
            env=env_status,
            exit_code=result.exit_code if result else None,
            duration_ms=result.duration_ms if result else 0,
            timed_out=bool(result and result.timed_out),
            oom_killed=bool(result and result.oom_killed),
            counts=TestCounts(**current.report.counts()),
            failures=[],
            output=current.output,
            output_truncated=current.output_truncated,
            skipped_reason=None,
            base_checked=False,
            limits=applied,
            clamped=clamped,
            error=current.error,
        )
        if current.error is not None:
            answer.status = "error"
        elif not current.completed:
            # Out of time or memory: the change's fault when the same selection finished at base.
            base = await self._base_run(plan, argv, actor)
            answer.base_checked = base.completed
            what = "ran out of time" if answer.timed_out else "ran out of memory"
            if base.completed:
                answer.status = "failed"
                answer.error = f"the tests {what}; at base_sha the same selection finished"
            else:
                answer.status = "error"
                answer.error = f"the tests {what}, at base_sha too: no verdict"
        else:
            await self._judge(plan, argv, current, answer, actor)
        await jobs.hub.publish(
            job.id,
            "test",
            {
                "status": answer.status,
                "rule": answer.rule,
                "counts": answer.counts.model_dump(),
                "new": sum(f.new and not f.flaky for f in answer.failures),
            },
        )
        return answer

    async def _judge(
        self, plan: _Plan, argv: list[str], current: _Run, answer: TestResult, actor: Actor
    ) -> None:
        sel = plan.sel
        cases = _with_exit_case(current, sel.parser)
        if not cases:
            answer.skipped_reason = f"no tests found ({sel.rule}: {' '.join(argv)} collected none)"
            return
        failing = [c for c in cases if c.failing]
        if not failing:
            return
        base = await self._base_run(plan, argv, actor)
        answer.base_checked = base.completed
        if not base.completed:
            answer.error = f"the run at base_sha gave no verdict, so every failure counts as new: {base.note}"
        new_ids = [
            c.id for c in failing if not base.completed or base.outcomes.get(c.id) not in ("failed", "error")
        ]
        flaky: set[str] = set()
        if new_ids:
            again = await self._run(plan, rerun_argv(sel, argv, new_ids), "rerun", actor)
            if again.completed:
                outcomes = again.outcomes()
                for c in _with_exit_case(again, sel.parser):
                    outcomes[c.id] = c.outcome
                flaky = {
                    i
                    for i in new_ids
                    if outcomes.get(i) == "passed"
                    or (i == EXIT_CASE and again.result is not None and again.result.exit_code == 0)
                }
        answer.failures = [
            TestFailure(
                id=c.id,
                message=c.message,
                path=c.path,
                line=c.line,
                new=c.id in new_ids,
                flaky=c.id in flaky,
            )
            for c in failing
        ]
        if any(f.new and not f.flaky for f in answer.failures):
            answer.status = "failed"

    # --- planning -------------------------------------------------------------------------------

    def _skipped(self, reason: str, language: str, env_status: str | None) -> TestResult:
        return TestResult(
            status="passed",
            language=language,
            command=[],
            rule="none",
            image=None,
            tool_source=None,
            env=env_status,
            exit_code=None,
            duration_ms=0,
            timed_out=False,
            oom_killed=False,
            counts=TestCounts(passed=0, failed=0, skipped=0, errors=0),
            failures=[],
            output="",
            output_truncated=False,
            skipped_reason=reason,
            base_checked=False,
            limits=None,
            clamped=[],
            error=None,
        )

    async def _env_status(self, job_id: str, picked: Selection | Skip) -> str | None:
        env = self.jobs.env
        if env is None:
            return None
        state = env.state(job_id)
        if state is not None and state.status == "building" and isinstance(picked, Selection):
            # Tests need the repository's dependencies: wait for the build, within the run's deadline.
            try:
                state = await asyncio.wait_for(env.wait(job_id), picked.spec.timeout_s)
            except TimeoutError:
                pass
        return state.status if state is not None else None

    def _plan(
        self, job: JobRecord, sel: Selection, timeout_s: int | None
    ) -> tuple[_Plan, TestLimitsOut, list[str]]:
        jobs = self.jobs
        cfg = jobs.images.config
        spec = sel.spec
        job_limits = Limits.of_job(job.limits)
        clamped: list[str] = []
        timeout = spec.timeout_s
        if timeout_s is not None:
            if timeout_s > spec.timeout_s:
                clamped.append("timeout_s")
            timeout = min(timeout_s, spec.timeout_s)

        def tighter(own: float | None, job_value: float) -> float:
            return job_value if own is None else min(own, job_value)  # never more than the job has

        limits = cfg.clamp(
            {
                "memory_mb": int(tighter(spec.memory_mb, job_limits.memory_mb)),
                "cpus": tighter(spec.cpus, job_limits.cpus),
                "pids": int(tighter(spec.pids, job_limits.pids)),
                "disk_mb": job_limits.disk_mb,
                "tool_timeout_s": job_limits.tool_timeout_s,
                "output_cap_kb": job_limits.output_cap_kb,
            }
        ).model_copy(update={"lint_timeout_s": timeout})  # the run's own deadline, clamped above
        # The copy of the workspace lives in the box's /tmp: room for the whole workspace, plus scratch.
        tmp_mb = min(job_limits.disk_mb, cfg.limits.maxima.disk_mb) + spec.tmp_mb
        env = jobs.env
        mount = env.mount(env.state(job.id)) if env is not None else None
        plan = _Plan(
            job=job,
            sel=sel,
            image=jobs.images.images[sel.image].tag,
            limits=limits,
            tmp_mb=tmp_mb,
            mounts=(mount,) if mount is not None else (),
        )
        applied = TestLimitsOut(
            timeout_s=timeout, memory_mb=limits.memory_mb, cpus=limits.cpus, pids=limits.pids, tmp_mb=tmp_mb
        )
        return plan, applied, clamped

    async def _tree(self, job: JobRecord, actor: Actor) -> tuple[set[str], list[str]]:
        req = ListDirectoryRequest(path=".", depth=3)

        caps = replace(self.jobs.caps, max_entries=20000)
        tree = await self.jobs.run_tool(job.id, LIST_DIRECTORY, req, actor, caps=caps)
        root = {e.path for e in tree.entries if "/" not in e.path and e.type != "dir"}
        return root, [e.path for e in tree.entries if e.type == "file"]

    async def _texts(self, job: JobRecord, names: set[str], actor: Actor) -> dict[str, str]:
        async def read(name: str) -> tuple[str, str | None]:
            req = ReadFileRequest(path=name)
            try:
                caps = replace(self.jobs.caps, read=CONFIG_READ_CAP)
                answer = await self.jobs.run_tool(job.id, READ_FILE, req, actor, caps=caps)
            except FAILURES:
                return name, None  # unreadable (binary, a link out): it decides nothing
            return name, answer.content

        found = await asyncio.gather(*(read(n) for n in sorted(names)))
        return {name: text for name, text in found if text is not None}

    # --- runs -----------------------------------------------------------------------------------

    async def _base_run(self, plan: _Plan, argv: list[str], actor: Actor) -> _Base:
        job = plan.job
        # The environment is part of what ran: a base run without /env (still building) is not
        # the base of a run with it.
        env = tuple(sorted(m.source for m in plan.mounts))
        key = (job.id, plan.image, tuple(argv), env)
        lock = self._base_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._base.get(key)
            if cached is not None:
                return cached
            run = await self._run(plan, argv, "base_sha", actor)
            if run.completed:
                outcomes = run.outcomes()
                for c in _with_exit_case(run, plan.sel.parser):
                    outcomes[c.id] = c.outcome
                base = _Base(outcomes=outcomes, completed=True)
            else:
                r = run.result
                note = run.error or ("it ran out of time" if r and r.timed_out else "it ran out of memory")
                base = _Base(completed=False, note=note)
            if job.id in {k[0] for k in self._base_locks}:  # not forgotten meanwhile
                self._base[key] = base
            return base

    async def _run(self, plan: _Plan, argv: list[str], at: At, actor: Actor) -> _Run:
        jobs = self.jobs
        job = plan.job
        assert job.volume is not None and job.base_sha is not None
        sel = plan.sel
        source = job.base_sha if at == "base_sha" else "workspace"
        run_argv = box.argv(source, argv)
        env = dict(sel.env)
        if sel.parser == "junit_xml":
            env["DOCKYARD_REPORT"] = REPORT
        cap = plan.limits.output_cap_kb * 1024
        spec = RunSpec(
            name=f"dockyard-{job.id}-test-{secrets.token_hex(3)}",
            image=plan.image,
            argv=run_argv,
            workspace_volume=job.volume,
            limits=plan.limits,
            labels={"dockyard.job": job.id, "dockyard.test": at},
            user=jobs.settings.sandbox_user,
            nofile=jobs.images.config.limits.nofile,
            tmp_mb=plan.tmp_mb,
            timeout_s=float(plan.limits.lint_timeout_s),
            output_cap=cap + REPORT_CAP,
            workdir="/tmp",
            env=env,
            runtime=jobs.settings.sandbox_runtime,
            mounts=plan.mounts,
            tmp_exec=True,
        )
        try:
            async with jobs.limiter.slot(actor, "run"):
                result = await jobs.backend.run(spec)
        except FAILURES as e:
            await self._audit(job, actor, run_argv, None, contract(e).code, at, sel)
            return _Run(None, Report(), error=e.message)
        stdout = result.stdout.decode("utf-8", "replace")
        tool, stderr = box.split_tool(result.stderr.decode("utf-8", "replace"))
        report = PARSERS[sel.parser](stdout, stderr)
        raw = stderr if sel.parser == "junit_xml" else stderr + stdout
        output = raw[:cap]
        error = None
        if result.exit_code == box.COPY_FAILED and not report.cases:
            error = (
                stderr.strip().splitlines()[-1] if stderr.strip() else "the test box could not start the run"
            )
        await self._audit(job, actor, run_argv, result, result.outcome, at, sel)
        return _Run(
            result,
            report,
            tool=tool,
            output=output,
            output_truncated=result.output_truncated or len(raw) > cap,
            error=error,
        )

    async def _audit(
        self,
        job: JobRecord,
        actor: Actor,
        argv: list[str],
        result: ExecResult | None,
        outcome: str,
        at: At,
        sel: Selection,
    ) -> None:
        await self.jobs.store.audit(
            AuditEntry(
                actor=actor,
                action="test",
                outcome=outcome,
                job_id=job.id,
                container_id=None,
                argv=argv[5:],  # the runner's argv, not the copy script (box.argv)
                exit_code=result.exit_code if result else None,
                duration_ms=result.duration_ms if result else None,
                bytes_in=0,
                bytes_out=result.bytes_out if result else 0,
                details={
                    "language": sel.language,
                    "rule": sel.rule,
                    "at": at,
                    "timed_out": bool(result and result.timed_out),
                    "oom_killed": bool(result and result.oom_killed),
                },
            )
        )


__all__ = ["TestService"]
