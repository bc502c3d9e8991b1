"""Running linters: each in a hardened, capped linter box of its language image that sees
the job's workspace read-only (and the job's dependency environment, read-only at /env, when it has
one); diagnostics judged `new` against the same linter at base_sha, by position (positions.py).

The base run extracts the tree at base_sha into the linter box's own /tmp (`git archive`; the
workspace stays read-only) and runs the same command there on the changed files that existed then
and had findings now. Unchanged files cannot have new findings, so they are never run at base.
A base result is kept per (job, linter, tool, file) until the job ends: base_sha never moves.

Tool source: with an environment, a linter's `repo_command` (the repository's own ruff, eslint 8,
xo...) runs when the environment has it, else the image's tool; one probe per (image, linter,
environment) says which and its version, and every result carries both (`tool_source`, `version`).

Boxes: one long-lived linter box per (job, image, caps, environment), created on first use with
the workspace read-only, removed before the job's volume when the job ends (the closing hook).
Each run is ONE exec that first resets the box (kills every process but its init and idle process,
empties /tmp) and then runs the linter under `timeout -s KILL`, so no run sees another's leftovers
and a warm lint pays no container start (~200-500 ms here). A box that cannot be reset is removed
and the run retried in a fresh one. Runs in one box are serialised (its memory cap is one).
"""

from __future__ import annotations

import asyncio
import hashlib
import posixpath
import secrets
import shlex
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from service.audit import Actor, AuditEntry
from service.errors import (
    FAILURES,
    FileNotFound,
    JobNotReady,
    PathOutsideWorkspace,
    PayloadTooLarge,
    SandboxFailed,
    contract,
)
from service.jobs import JobService
from service.lint.detect import Pick, Skip, interpreter, rule_files, select
from service.lint.parsers import PARSERS, Diagnostic
from service.lint.positions import FileMap, judge_new, parse_patch
from service.logging import get_logger
from service.models import (
    Clamped,
    LintDiagnostic,
    LinterRun,
    LintRequest,
    LintResult,
    LintSkipped,
    ListDirectoryRequest,
    ListDirectoryResult,
)
from service.sandbox.backend import ExecResult, RunSpec, VolumeMount
from service.sandbox.errors import SandboxGone
from service.settings import Limits
from service.store import JobRecord
from service.tools.call import ExecCall
from service.tools.diff import DiffQuery
from service.tools.registry import DIFF, LIST_DIRECTORY

log = get_logger(__name__)

BASE_SCRIPT = (
    'set -e; base="$1"; shift; mkdir -p /tmp/base; '
    'git -C /workspace archive --format=tar "$base" | tar -x -C /tmp/base; cd /tmp/base; exec "$@"'
)
CONFIG_READ_CAP = 256 * 1024  # bytes of one config file read for the enabling rules
ENV_ROOT = "/env"
# Which tool a linter box would run, and its version: one line "repo"/"image", then the version.
PROBE_SCRIPT = 'if [ -n "$1" ] && [ -e "$1" ]; then echo repo; eval "$2"; else echo image; eval "$3"; fi 2>&1'
# One exec in the job's box: per argument, kind (f file, d dir, l link, m missing) NUL path NUL
# data NUL. Paths before "--": data is an extensionless file's first line (its shebang); config
# files after "--": data is its text (capped, a link is never followed).
FILES_SCRIPT = (
    'mode=p; for f; do if [ "$f" = -- ]; then mode=c; continue; fi; '
    'if [ -L "$f" ]; then k=l; elif [ -f "$f" ]; then k=f; elif [ -d "$f" ]; then k=d; else k=m; fi; '
    'printf \'%s\\0%s\\0\' "$k" "$f"; '
    'if [ "$k" = f ] && [ "$mode" = c ]; then head -c CAP -- "$f" 2>/dev/null | tr -d "\\000"; '
    'elif [ "$k" = f ]; then case "${f##*/}" in *.*) ;; '
    '*) head -c 200 -- "$f" 2>/dev/null | head -n 1 | tr -d "\\000";; esac; fi; '
    "printf '\\0'; done; "
    # then the workspace root's files and links (kind r): what the enabling globs match
    'for f in * .[!.]* ..?*; do if [ -f "$f" ] || [ -L "$f" ]; then printf \'r\\0%s\\0\\0\' "$f"; fi; done'
)
SHEBANG_FILES_MAX = 5000
# A run in a linter box, one exec: first the box is reset (every process but its init, its idle
# process ($1), this shell and the exec's `timeout` parent killed; /tmp emptied), then NAME=VALUE
# pairs up to "--" are exported and the linter runs. A box that cannot be reset says DIRTY and
# exits 125 without running anything: it is removed and the run retried in a fresh box.
RESET = (
    'keep=" 1 $1 $$ $PPID "; shift; for pass in 1 2 3 4 5; do left=0; for d in /proc/[0-9]*; do '
    'p=${d#/proc/}; case "$keep" in *" $p "*) ;; *) kill -9 "$p" 2>/dev/null && left=1;; esac; done; '
    '[ "$left" = 0 ] && break; sleep 0.05; done; '
    "chmod -R u+rwx /tmp 2>/dev/null; find /tmp -mindepth 1 -delete 2>/dev/null; n=0; "
    'for d in /proc/[0-9]*; do p=${d#/proc/}; case "$keep" in *" $p "*) continue;; esac; '
    'grep -qs "^State:[[:space:]]*Z" "$d/status" || n=$((n + 1)); done; '
    'if [ "$n" != 0 ] || [ -n "$(ls -A /tmp)" ]; then echo "DOCKYARD-BOX-DIRTY $n"; exit 125; fi; '
)
RUN_SCRIPT = RESET + 'while [ "$1" != -- ]; do export "$1"; shift; done; shift; cd /workspace && exec "$@"'
DIRTY = b"DOCKYARD-BOX-DIRTY"


@dataclass(frozen=True)
class ToolEnv:
    """A job's dependency environment: a volume mounted read-only at /env in its linter boxes.

    Layout: Python /env/venv/bin/<tool>; Node /env/node_modules(/.bin); Go /env/gomod (GOMODCACHE).
    `key` names its content (the environment cache's key), so tool probes are cached per content.
    """

    volume: str
    key: str


EnvLookup = Callable[[JobRecord], Awaitable[ToolEnv | None]]


@dataclass(frozen=True)
class Tool:
    source: str  # "repo" | "image"
    version: str | None


@dataclass
class _Box:
    container_id: str
    keep: str  # pid of its idle process (`sleep infinity` under the box's init)
    lock: asyncio.Lock  # one run at a time: a run and its reset are never interleaved


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


def parse_files(result: ExecResult) -> dict[tuple[str, str], tuple[str, str]]:
    """FILES_SCRIPT's answer → (section, path) → (kind, first line or config text); section "r"
    holds the workspace root's files, "p" every path asked about."""
    if result.exit_code != 0 or result.timed_out or result.output_truncated:
        raise SandboxFailed("could not look at the files to lint", {"exit_code": result.exit_code})
    parts = result.stdout.split(b"\0")
    out = {}
    for i in range(0, len(parts) - 2, 3):
        kind = parts[i].decode()
        path = parts[i + 1].decode("utf-8", "replace")
        out[("r" if kind == "r" else "p", path)] = (kind, parts[i + 2].decode("utf-8", "replace"))
    return out


def _identity(argv: list[str], tool: Tool) -> str:
    """What makes a base result reusable: the same linter command and the same tool."""
    raw = "\0".join([*argv, tool.source, tool.version or ""])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


class LintService:
    def __init__(self, jobs: JobService, envs: EnvLookup | None = None):
        """`envs`: the job → its ready dependency environment (None: every linter is the image's)."""
        self.jobs = jobs
        self.envs = envs
        self._tools: dict[tuple[str, str, str | None], Tool] = {}
        self._boxes: dict[str, dict[tuple[object, ...], _Box]] = {}  # job id → caps key → its box
        self._box_lock = asyncio.Lock()
        self._closed: set[str] = set()  # jobs whose boxes went: never make another for them
        # job id → (linter, tool identity, file) → that file's diagnostics at base_sha
        self._base: dict[str, dict[tuple[str, str, str], list[Diagnostic]]] = {}
        # at a job's end: its linter boxes go (before its volume, which they mount), its base results too
        jobs.on_closing.append(self._drop_job)

    async def lint(self, job_id: str, req: LintRequest, actor: Actor) -> LintResult:
        """One lint call: it holds one of its tenant's run slots for as long as it runs."""
        async with self.jobs.limiter.slot(actor, "run"):
            return await self._lint(job_id, req, actor)

    async def _lint(self, job_id: str, req: LintRequest, actor: Actor) -> LintResult:
        jobs = self.jobs
        job = await jobs.ready_job(job_id)
        cfg = jobs.images.config
        assert job.base_sha is not None
        base_sha = job.base_sha
        explicit = _check_paths(req.paths) if req.paths is not None else None
        listing_req = ListDirectoryRequest(path=".", depth=20 if req.all_files else 1)

        def whole_listing(tree: ListDirectoryResult) -> ListDirectoryResult:
            if tree.truncated:  # cut short (time, memory, the entry cap): a lint of part is no verdict
                raise PayloadTooLarge(
                    "the workspace is too large to list for lint (over the entry cap, or its listing "
                    "ran out of time or memory); lint the files you changed, or name them in `paths`",
                    {"timed_out": tree.timed_out, "oom_killed": tree.oom_killed, "entry_cap": 20000},
                )
            return tree

        # parse_changes raises when the diff exec was cut short: never a "passed" over no files.
        # One round of execs: the diff; the explicit paths, config files and root files; the whole
        # tree's listing only for all_files.
        configs = sorted(n for n in rule_files(cfg) if not any(c in n for c in "*?["))

        async def whole_tree() -> ListDirectoryResult | None:
            if not req.all_files:
                return None
            caps = replace(jobs.caps, max_entries=20000)
            return whole_listing(await jobs.run_tool(job.id, LIST_DIRECTORY, listing_req, actor, caps=caps))

        changes, tree, (seen, root_files) = await asyncio.gather(
            jobs.run_tool(job.id, DIFF, DiffQuery(base_sha), actor),
            whole_tree(),
            self._files(job, explicit or [], configs, actor),
        )
        changes = changes.complete()
        changed: dict[str, str] = {c.path: c.status for c in changes.changes}
        maps = parse_patch(changes.patch, truncated=changes.output_truncated)
        if explicit is not None:
            targets = explicit
        elif tree is not None:
            targets = [e.path for e in tree.entries if e.type == "file"]
        else:
            targets = [p for p, status in changed.items() if status != "deleted"]
        if explicit is not None:
            missing = [p for p in explicit if seen.get(p, ("m", ""))[0] == "m"]
            if missing:
                raise FileNotFound(
                    f"no such file in the workspace: {', '.join(missing[:10])}", {"paths": missing[:100]}
                )
        else:  # changed or all files: their shebangs are looked at now (only extensionless ones)
            ask = [t for t in targets if "." not in posixpath.basename(t).lstrip(".")]
            if ask:
                seen |= (await self._files(job, ask[:SHEBANG_FILES_MAX], [], actor))[0]
        shebangs = {}
        for t in targets:
            kind, first = seen.get(t, ("m", ""))
            if kind == "f" and "." not in posixpath.basename(t).lstrip(".") and (name := interpreter(first)):
                shebangs[t] = name
        texts = {n: seen[n][1] for n in configs if n in root_files and seen.get(n, ("m", ""))[0] == "f"}
        picks, skips = select(
            cfg, root_files=root_files, texts=texts, targets=targets, requested=req.linters, shebangs=shebangs
        )
        env = await self.envs(job) if self.envs is not None else None

        job_limits = Limits.of_job(job.limits)
        budget = asyncio.Semaphore(max(1, int(job_limits.cpus)))
        runs = await asyncio.gather(
            *(self._run_linter(job, pick, changed, maps, job_limits, env, budget, actor) for pick in picks)
        )
        done = [r for r in runs if isinstance(r, LinterRun)]
        skips += [r for r in runs if isinstance(r, Skip)]
        any_new = any(r.new_count for r in done)
        any_error = any(r.error for r in done)
        status = "failed" if any_new else "error" if any_error else "passed"
        await jobs.hub.publish(
            job.id,
            "lint",
            {"status": status, "linters": [r.name for r in done], "new": sum(r.new_count for r in done)},
        )
        return LintResult(
            status=status,
            linters=done,
            skipped=[LintSkipped(name=s.name, language=s.language, reason=s.reason) for s in skips],
            clamped={k: Clamped(**v) for k, v in (job.limits.get("clamped") or {}).items()},
        )

    async def _files(
        self, job: JobRecord, paths: list[str], configs: list[str], actor: Actor
    ) -> tuple[dict[str, tuple[str, str]], set[str]]:
        """Paths and config files as FILES_SCRIPT sees them, and the workspace root's files."""
        script = FILES_SCRIPT.replace("CAP", str(CONFIG_READ_CAP))
        argv = ["sh", "-c", script, "lint-files", *(_arg(p) for p in paths), "--", *configs]
        found = await self.jobs.run_exec(job.id, ExecCall("lint.files", argv), actor, parse_files)
        seen = {(p[2:] if p.startswith("./-") else p): v for (k, p), v in found.items() if k == "p"}
        return seen, {p for (k, p) in found if k == "r"}

    def _limits(self, pick: Pick, job_limits: Limits) -> Limits:
        cfg = self.jobs.images.config
        spec = pick.spec

        def tighter(own: float | None, job: float) -> float:
            return job if own is None else min(own, job)  # a linter never gets more than its job

        requested = {
            # a linter's own memory_mb is its own (its box is not the job's box), up to the maximum
            "memory_mb": spec.memory_mb or job_limits.memory_mb,
            "cpus": tighter(spec.cpus, job_limits.cpus),
            "pids": int(tighter(spec.pids, job_limits.pids)),
            "lint_timeout_s": int(tighter(spec.timeout_s, job_limits.lint_timeout_s)),
            "output_cap_kb": job_limits.output_cap_kb,
            "disk_mb": job_limits.disk_mb,
        }
        return cfg.clamp(requested)

    @staticmethod
    def _clamped(pick: Pick, applied: Limits) -> dict[str, Clamped]:
        """The linter's own limits (its ops entry) that were lowered — to the job's limit or the
        ops maximum — and to what, so a cut is said, never silent."""
        spec = pick.spec
        asked: dict[str, float | None] = {
            "memory_mb": spec.memory_mb,
            "cpus": spec.cpus,
            "pids": spec.pids,
            "lint_timeout_s": spec.timeout_s,
        }
        return {
            key: Clamped(requested=value, maximum=getattr(applied, key))
            for key, value in asked.items()
            if value is not None and value > getattr(applied, key)
        }

    # --- linter boxes: one per (job, image, caps, environment), reset between runs -------------

    def _box_spec(
        self, job: JobRecord, pick: Pick, image: str, limits: Limits, mounts: tuple[VolumeMount, ...]
    ) -> RunSpec:
        assert job.volume is not None
        cfg = self.jobs.images.config
        return RunSpec(
            name=f"dockyard-{job.id}-lint-{secrets.token_hex(4)}",
            image=image,
            argv=[],
            workspace_volume=job.volume,
            limits=limits,
            labels={"dockyard.job": job.id, "dockyard.lint": "box"},
            user=self.jobs.settings.sandbox_user,
            nofile=cfg.limits.nofile,
            # base runs unpack the tree at base_sha into /tmp: the workspace's size on top
            tmp_mb=(pick.spec.tmp_mb or cfg.limits.tmp_mb) + limits.disk_mb,
            timeout_s=float(limits.lint_timeout_s),
            output_cap=0,
            runtime=pick.spec.runtime,
            mounts=mounts,
        )

    @staticmethod
    def _box_key(spec: RunSpec) -> tuple[object, ...]:
        lim = spec.limits
        return (spec.image, lim.memory_mb, lim.cpus, lim.pids, spec.tmp_mb, spec.runtime, spec.mounts)

    async def _box(self, job: JobRecord, spec: RunSpec) -> _Box:
        key = self._box_key(spec)
        async with self._box_lock:  # _drop_job takes it too: no box is made for a closing job
            if job.id in self._closed:
                raise JobNotReady(f"job {job.id} has ended", {"job_id": job.id})
            boxes = self._boxes.setdefault(job.id, {})
            box = boxes.get(key)
            if box is None:
                backend = self.jobs.backend
                container_id = await backend.create_linter_box(spec)
                try:
                    found = await backend.exec(
                        container_id,
                        ["cat", "/proc/1/task/1/children"],
                        stdin=None,
                        timeout_s=10,
                        output_cap=4096,
                    )
                    keep = found.stdout.decode().split()
                    if found.exit_code != 0 or len(keep) != 1:
                        raise SandboxFailed("a linter box did not start as expected", {"children": keep})
                except BaseException:
                    await backend.destroy(container_id, None)
                    raise
                box = boxes[key] = _Box(container_id, keep[0], asyncio.Lock())
            return box

    async def _drop_box(self, job_id: str, key: tuple[object, ...]) -> None:
        box = self._boxes.get(job_id, {}).pop(key, None)
        if box is not None:
            await self.jobs.backend.destroy(box.container_id, None)

    async def _drop_job(self, job_id: str) -> None:
        self._base.pop(job_id, None)
        async with self._box_lock:
            self._closed.add(job_id)
            boxes = self._boxes.pop(job_id, None) or {}
        for box in boxes.values():
            try:
                await self.jobs.backend.destroy(box.container_id, None)
            except FAILURES as e:  # the reaper removes what is left of an ended job
                log.warning("linter_box_remove_failed", job_id=job_id, error=e.message)

    async def _in_box(
        self,
        job: JobRecord,
        pick: Pick,
        image: str,
        limits: Limits,
        mounts: tuple[VolumeMount, ...],
        argv: list[str],
        env: dict[str, str],
        timeout_s: float,
        output_cap: int,
    ) -> ExecResult:
        """One run in the job's linter box, then every other process killed and /tmp emptied."""
        spec = self._box_spec(job, pick, image, limits, mounts)
        box = await self._box(job, spec)
        key = self._box_key(spec)
        backend = self.jobs.backend
        full = ["sh", "-c", RUN_SCRIPT, "lint-run", *(f"{k}={v}" for k, v in env.items()), "--", *argv]
        for attempt in (1, 2):
            async with box.lock:
                try:
                    result = await backend.exec(
                        box.container_id,
                        [*full[:4], box.keep, *full[4:]],
                        stdin=None,
                        timeout_s=timeout_s,
                        output_cap=output_cap,
                    )
                except SandboxGone as e:
                    self._boxes.get(job.id, {}).pop(key, None)
                    raise SandboxFailed("the linter box ended during the run", {"linter": pick.name}) from e
            if not (result.exit_code == 125 and result.stdout.startswith(DIRTY)):
                result.argv = argv
                return result
            # something outlived the reset: this box is not used again, the run goes to a fresh one
            log.warning("linter_box_not_clean", job_id=job.id, linter=pick.name, attempt=attempt)
            await self._drop_box(job.id, key)
            box = await self._box(job, spec)
        raise SandboxFailed("a fresh linter box could not be reset", {"linter": pick.name})

    async def _tool(
        self, pick: Pick, image: str, limits: Limits, env: ToolEnv | None, job: JobRecord
    ) -> Tool:
        """Which tool runs (the repo's from its environment, or the image's) and its version."""
        spec = pick.spec
        requires = spec.repo_requires or spec.repo_command
        key = (image, pick.name, env.key if env and requires else None)
        if key in self._tools:
            return self._tools[key]

        def version_argv(tool: str) -> str:
            return shlex.join([tool if a == "{tool}" else a for a in spec.version_command])

        repo_tool = spec.repo_command or spec.command[0]
        argv = [
            "sh",
            "-c",
            PROBE_SCRIPT,
            "lint-probe",
            requires if env and requires else "",
            version_argv(repo_tool),
            version_argv(spec.command[0]),
        ]
        spec_env = {**spec.env, **(spec.repo_env if env and requires else {})}
        mounts = (VolumeMount(env.volume, ENV_ROOT),) if env else ()
        try:
            result = await self._in_box(job, pick, image, limits, mounts, argv, spec_env, 30, 64 * 1024)
        except FAILURES:
            return Tool("image", None)  # not cached: the run itself reports what is wrong
        lines = [ln.strip() for ln in result.stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
        source = "repo" if lines[:1] == ["repo"] else "image"
        version = lines[1][:200] if len(lines) > 1 and result.exit_code == 0 else None
        tool = Tool(source, version)
        self._tools[key] = tool
        return tool

    async def _run_linter(
        self,
        job: JobRecord,
        pick: Pick,
        changed: dict[str, str],
        maps: dict[str, FileMap],
        job_limits: Limits,
        env: ToolEnv | None,
        budget: asyncio.Semaphore,
        actor: Actor,
    ) -> LinterRun | Skip:
        cfg = self.jobs.images.config
        spec = pick.spec
        image_name = spec.image or cfg.languages[pick.language].image
        image = self.jobs.images.images[image_name].tag
        if spec.repo_only and env is None:
            return Skip(
                pick.language,
                pick.name,
                f"the repository uses {pick.name} ({pick.rule}); the image has no {pick.name} and the job "
                f"has no dependency environment to take the repository's from, so {pick.name} did not run "
                "(and no other linter stands in for it)",
            )
        limits = self._limits(pick, job_limits)
        async with budget:
            tool = await self._tool(pick, image, limits, env, job)
        if spec.repo_only and tool.source != "repo":
            return Skip(
                pick.language,
                pick.name,
                f"the repository uses {pick.name} ({pick.rule}) but its environment has no "
                f"{spec.repo_command}; {pick.name} did not run",
            )
        template = spec.scope_command if pick.scoped and spec.scope_command else spec.command
        if tool.source == "repo" and spec.repo_command:
            template = [spec.repo_command, *template[1:]]
        run_env = {**spec.env, **(spec.repo_env if tool.source == "repo" else {})}
        mounts = (VolumeMount(env.volume, ENV_ROOT),) if env else ()
        keep = set(pick.files)

        def argv_for(files: list[str]) -> list[str]:
            return list(template) if pick.scoped else expand(template, files)

        argv = argv_for(pick.files)
        async with budget:
            current = await self._one(job, pick, image, argv, limits, actor, run_env, mounts, base=False)
        if pick.scoped:
            current.diagnostics = [d for d in current.diagnostics if d.path in keep]
        # Only a changed file that existed at base and has findings now needs its base findings.
        need = sorted({d.path for d in current.diagnostics if changed.get(d.path) == "modified"})
        cache = self._base.setdefault(job.id, {}) if job.id not in self._closed else {}
        ident = _identity(template, tool)
        missing = [f for f in need if (pick.name, ident, f) not in cache]
        base_checked = not need or not missing
        if current.error is None and missing:
            async with budget:
                base = await self._one(
                    job, pick, image, argv_for(missing), limits, actor, run_env, mounts, base=True
                )
            if base.error is None:
                base_checked = True
                for f in missing:
                    cache[(pick.name, ident, f)] = [d for d in base.diagnostics if d.path == f]
            else:
                current.error = f"the run at base_sha failed, so every diagnostic counts as new: {base.error}"
        base_diags = [d for f in need for d in cache.get((pick.name, ident, f), [])]
        new = judge_new(current.diagnostics, base_diags, maps, changed)
        diagnostics = [
            LintDiagnostic(**d.__dict__, new=n) for d, n in zip(current.diagnostics, new, strict=True)
        ]
        result = current.result
        output = b""
        if result is not None:
            output = result.stdout + (b"\n" + result.stderr if result.stderr else b"")
        shown_cap = limits.output_cap_kb * 1024
        error = current.error
        failed = result is not None and not (result.timed_out or result.oom_killed or result.output_truncated)
        if (
            error is not None
            and failed
            and tool.source == "image"
            and (spec.repo_command or spec.repo_requires)
        ):
            # say what was missing rather than let the image's tool pass for the repository's own
            error += (
                " (the image's tool ran: the job has no dependency environment with the repository's own"
                f" {'tool' if spec.repo_command else 'dependencies'})"
            )
        return LinterRun(
            name=pick.name,
            language=pick.language,
            rule=pick.rule + (f"; its own scope ({', '.join(spec.scope_keys)})" if pick.scoped else ""),
            image=image,
            command=argv,
            files=len(pick.files),
            exit_code=result.exit_code if result else None,
            duration_ms=result.duration_ms if result else 0,
            timed_out=bool(result and result.timed_out),
            oom_killed=bool(result and result.oom_killed),
            diagnostics=diagnostics,
            new_count=sum(d.new for d in diagnostics),
            base_checked=base_checked and current.error is None,
            output=output[:shown_cap].decode("utf-8", "replace"),
            output_truncated=bool(result and (result.output_truncated or len(output) > shown_cap)),
            error=error,
            tool_source="repo" if tool.source == "repo" else "image",
            version=tool.version,
            clamped=self._clamped(pick, limits),
        )

    async def _one(
        self,
        job: JobRecord,
        pick: Pick,
        image: str,
        argv: list[str],
        limits: Limits,
        actor: Actor,
        env: dict[str, str],
        mounts: tuple[VolumeMount, ...],
        *,
        base: bool,
    ) -> _Outcome:
        assert job.base_sha is not None
        run_argv = ["sh", "-c", BASE_SCRIPT, "lint-base", job.base_sha, *argv] if base else argv
        cap = max(limits.output_cap_kb * 1024, self.jobs.images.config.limits.lint_capture_mb << 20)
        try:
            # read it all for parsing (up to lint_capture_mb); output_cap_kb only cuts what is shown
            result = await self._in_box(
                job, pick, image, limits, mounts, run_argv, env, limits.lint_timeout_s, cap
            )
        except FAILURES as e:
            await self._audit(job, pick, actor, run_argv, None, contract(e).code, base=base)
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
            mb = self.jobs.images.config.limits.lint_capture_mb
            error = f"{pick.name} printed more than {mb} MiB (limits.lint_capture_mb); its output was cut"
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
