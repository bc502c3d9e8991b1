"""Running linters: each in a fresh, hardened, capped container from its language image that sees
the job's workspace read-only; diagnostics judged `new` against the same linter at base_sha.

The base run extracts the tree at base_sha into the linter box's own /tmp (`git archive`; the
workspace stays read-only) and runs the same command there on the files that existed then, so
a repository's old debt never fails a fix, whatever the line numbers did.
"""

from __future__ import annotations

import asyncio
import posixpath
import secrets
from collections import Counter
from dataclasses import dataclass
from functools import partial

from service.audit import Actor, AuditEntry
from service.errors import DockyardError, PathOutsideWorkspace, SandboxFailed
from service.jobs import JobService
from service.lint.detect import Pick, rule_files, select
from service.lint.parsers import PARSERS, Diagnostic
from service.logging import get_logger
from service.models import (
    LintDiagnostic,
    LinterRun,
    LintRequest,
    LintResult,
    LintSkipped,
    ListDirectoryRequest,
    ListDirectoryResult,
    ReadFileRequest,
)
from service.sandbox.backend import ExecResult, RunSpec
from service.settings import Limits
from service.store import JobRecord
from service.tools import files as file_tools
from service.tools import listing
from service.tools.diff import diff_call, parse_changes

log = get_logger(__name__)

BASE_SCRIPT = (
    'set -e; base="$1"; shift; mkdir -p /tmp/base; '
    'git -C /workspace archive --format=tar "$base" | tar -x -C /tmp/base; cd /tmp/base; exec "$@"'
)
CONFIG_READ_CAP = 256 * 1024


@dataclass
class _Outcome:
    result: ExecResult | None
    diagnostics: list[Diagnostic]
    error: str | None


def _arg(path: str) -> str:
    return "./" + path if path.startswith("-") else path


def expand(command: list[str], files: list[str]) -> list[str]:
    dirs = sorted({"./" + d if (d := posixpath.dirname(f)) else "." for f in files})
    argv: list[str] = []
    for arg in command:
        if arg == "{files}":
            argv.extend(_arg(f) for f in files)
        elif arg == "{dirs}":
            argv.extend(dirs)
        else:
            argv.append(arg)
    return argv


def _check_paths(paths: list[str]) -> list[str]:
    out = []
    for p in paths:
        norm = posixpath.normpath(p)
        parts = norm.split("/")
        if p.startswith("/") or ".." in parts or ".git" in parts:
            raise PathOutsideWorkspace(f"path {p!r} is outside the workspace", {"path": p})
        out.append(norm)
    return out


class LintService:
    def __init__(self, jobs: JobService):
        self.jobs = jobs

    async def lint(self, job_id: str, req: LintRequest, actor: Actor) -> LintResult:
        jobs = self.jobs
        job = await jobs.ready_job(job_id)
        cfg = jobs.images.config
        assert job.base_sha is not None
        base_sha = job.base_sha
        explicit = _check_paths(req.paths) if req.paths is not None else None
        listing_req = ListDirectoryRequest(path=".", depth=20 if req.all_files else 1)

        def whole_listing(result: ExecResult) -> ListDirectoryResult:
            tree = listing.parse_list(listing_req, result)
            if tree.truncated:  # cut short (time, memory, the entry cap): a lint of part is no verdict
                raise SandboxFailed(
                    "the workspace listing was cut short; lint cannot tell which files to check",
                    {"timed_out": tree.timed_out, "oom_killed": tree.oom_killed},
                )
            return tree

        # parse_changes raises when the diff exec was cut short: never a "passed" over no files.
        changes, tree = await asyncio.gather(
            jobs.run_tool(job.id, diff_call(base_sha), actor, parse_changes),
            jobs.run_tool(job.id, listing.list_call(listing_req, 20000), actor, whole_listing),
        )
        changed: dict[str, str] = {c.path: c.status for c in changes.changes}
        root_files = {e.path for e in tree.entries if "/" not in e.path and e.type != "dir"}
        if explicit is not None:
            targets = explicit
        elif req.all_files:
            targets = [e.path for e in tree.entries if e.type == "file"]
        else:
            targets = [p for p, status in changed.items() if status != "deleted"]
        texts = await self._config_texts(job, root_files & rule_files(cfg), actor)
        picks, skips = select(cfg, root_files=root_files, texts=texts, targets=targets, requested=req.linters)

        job_limits = Limits(**job.limits)
        budget = asyncio.Semaphore(max(1, int(job_limits.cpus)))
        runs = await asyncio.gather(
            *(self._run_linter(job, pick, changed, job_limits, budget, actor) for pick in picks)
        )
        any_new = any(r.new_count for r in runs)
        any_error = any(r.error for r in runs)
        status = "failed" if any_new else "error" if any_error else "passed"
        await jobs.hub.publish(
            job.id,
            "lint",
            {"status": status, "linters": [r.name for r in runs], "new": sum(r.new_count for r in runs)},
        )
        return LintResult(
            status=status,
            linters=list(runs),
            skipped=[LintSkipped(name=s.name, language=s.language, reason=s.reason) for s in skips],
        )

    async def _config_texts(self, job: JobRecord, names: set[str], actor: Actor) -> dict[str, str]:
        async def read(name: str) -> tuple[str, str | None]:
            req = ReadFileRequest(path=name)
            try:
                answer = await self.jobs.run_tool(
                    job.id,
                    file_tools.read_call(req, CONFIG_READ_CAP),
                    actor,
                    partial(file_tools.parse_read, req),
                )
            except DockyardError:
                return name, None  # unreadable config (binary, a link out): it enables nothing
            return name, answer.content

        found = await asyncio.gather(*(read(n) for n in sorted(names)))
        return {name: text for name, text in found if text is not None}

    def _limits(self, pick: Pick, job_limits: Limits) -> Limits:
        cfg = self.jobs.images.config
        spec = pick.spec

        def tighter(own: float | None, job: float) -> float:
            return job if own is None else min(own, job)  # a linter never gets more than its job

        requested = {
            "memory_mb": int(tighter(spec.memory_mb, job_limits.memory_mb)),
            "cpus": tighter(spec.cpus, job_limits.cpus),
            "pids": int(tighter(spec.pids, job_limits.pids)),
            "lint_timeout_s": int(tighter(spec.timeout_s, job_limits.lint_timeout_s)),
            "output_cap_kb": job_limits.output_cap_kb,
            "disk_mb": job_limits.disk_mb,
        }
        return cfg.clamp(requested)

    async def _run_linter(
        self,
        job: JobRecord,
        pick: Pick,
        changed: dict[str, str],
        job_limits: Limits,
        budget: asyncio.Semaphore,
        actor: Actor,
    ) -> LinterRun:
        cfg = self.jobs.images.config
        image_name = pick.spec.image or cfg.languages[pick.language].image
        image = self.jobs.images.images[image_name].tag
        limits = self._limits(pick, job_limits)
        argv = expand(pick.spec.command, pick.files)
        async with budget:
            current = await self._one(job, pick, image, argv, limits, actor, base=False)
        in_base = [f for f in pick.files if changed.get(f) != "added"]
        had_old = {d.path for d in current.diagnostics} & set(in_base)
        base_counts: Counter[tuple[str, str, str]] = Counter()
        base_checked = False
        if current.error is None and had_old:
            async with budget:
                base = await self._one(
                    job, pick, image, expand(pick.spec.command, in_base), limits, actor, base=True
                )
            if base.error is None:
                base_checked = True
                base_counts = Counter(d.key() for d in base.diagnostics)
            else:
                current.error = f"the run at base_sha failed, so every diagnostic counts as new: {base.error}"
        diagnostics = []
        for d in current.diagnostics:
            old = base_counts[d.key()] > 0
            if old:
                base_counts[d.key()] -= 1
            diagnostics.append(LintDiagnostic(**d.__dict__, new=not old))
        result = current.result
        output = b""
        if result is not None:
            output = result.stdout + (b"\n" + result.stderr if result.stderr else b"")
        return LinterRun(
            name=pick.name,
            language=pick.language,
            rule=pick.rule,
            image=image,
            command=argv,
            files=len(pick.files),
            exit_code=result.exit_code if result else None,
            duration_ms=result.duration_ms if result else 0,
            timed_out=bool(result and result.timed_out),
            oom_killed=bool(result and result.oom_killed),
            diagnostics=diagnostics,
            new_count=sum(d.new for d in diagnostics),
            base_checked=base_checked,
            output=output[: limits.output_cap_kb * 1024].decode("utf-8", "replace"),
            output_truncated=bool(result and result.output_truncated),
            error=current.error,
        )

    async def _one(
        self,
        job: JobRecord,
        pick: Pick,
        image: str,
        argv: list[str],
        limits: Limits,
        actor: Actor,
        *,
        base: bool,
    ) -> _Outcome:
        assert job.volume is not None and job.base_sha is not None
        settings = self.jobs.settings
        run_argv = ["sh", "-c", BASE_SCRIPT, "lint-base", job.base_sha, *argv] if base else argv
        spec = RunSpec(
            name=f"dockyard-{job.id}-lint-{pick.name}-{secrets.token_hex(3)}",
            image=image,
            argv=run_argv,
            workspace_volume=job.volume,
            limits=limits,
            labels={"dockyard.job": job.id, "dockyard.lint": pick.name},
            user=settings.sandbox_user,
            nofile=self.jobs.images.config.limits.nofile,
            # The base run unpacks the tree at base_sha into /tmp, so it gets the workspace's size on top.
            tmp_mb=(pick.spec.tmp_mb or self.jobs.images.config.limits.tmp_mb)
            + (limits.disk_mb if base else 0),
            timeout_s=float(limits.lint_timeout_s),
            output_cap=limits.output_cap_kb * 1024,
            env=dict(pick.spec.env),
            runtime=pick.spec.runtime,
        )
        try:
            result = await self.jobs.backend.run(spec)
        except DockyardError as e:
            await self._audit(job, pick, actor, run_argv, None, e.code, base=base)
            return _Outcome(None, [], e.message)
        stdout = result.stdout.decode("utf-8", "replace")
        stderr = result.stderr.decode("utf-8", "replace")
        diagnostics = PARSERS[pick.spec.parser](stdout, stderr)
        error = None
        if result.timed_out:
            error = f"{pick.name} ran out of time ({limits.lint_timeout_s} s) and was killed"
        elif result.oom_killed:
            error = f"{pick.name} ran out of memory ({limits.memory_mb} MB) and was killed"
        elif result.output_truncated:
            error = f"{pick.name} printed more than {limits.output_cap_kb} KiB; its output was cut"
        elif result.exit_code != 0 and not diagnostics:
            tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
            error = f"{pick.name} failed (exit {result.exit_code}) without diagnostics: {tail[0][:300]}"
        await self._audit(job, pick, actor, run_argv, result, result.outcome, base=base)
        return _Outcome(result, diagnostics, error)

    async def _audit(
        self,
        job: JobRecord,
        pick: Pick,
        actor: Actor,
        argv: list[str],
        result: ExecResult | None,
        outcome: str,
        *,
        base: bool,
    ) -> None:
        await self.jobs.store.audit(
            AuditEntry(
                actor=actor,
                action="lint",
                outcome=outcome,
                job_id=job.id,
                container_id=None,
                argv=argv,
                exit_code=result.exit_code if result else None,
                duration_ms=result.duration_ms if result else None,
                bytes_in=0,
                bytes_out=result.bytes_out if result else 0,
                details={
                    "linter": pick.name,
                    "language": pick.language,
                    "at": "base_sha" if base else "workspace",
                    "files": len(pick.files),
                    "timed_out": bool(result and result.timed_out),
                    "oom_killed": bool(result and result.oom_killed),
                },
            )
        )
