"""The bot's whole loop (agent → lint → self-review → CI → draft PR) against an in-memory control API
and the fake Anthropic API driven by the REAL anthropic SDK: fast, no Docker, no GitHub."""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import pytest
from dockyard_client import AsyncDockyard
from dockyard_client.errors import APIError, error_class
from dockyard_client.models import (
    AgentTool,
    ChecksResult,
    CommitResult,
    DeleteFileResult,
    DiffResult,
    EditResult,
    Job,
    LintResult,
    ListDirectoryResult,
    MoveFileResult,
    ReadFileResult,
    ReplaceInFileResult,
    SearchResult,
    TestResult,
    WriteFileResult,
)
from pydantic import BaseModel, ValidationError

from bot.agent import SUPERSEDED
from bot.client import DockyardPort
from bot.fixer import FixOutcome, FixRequest, make_llm, run_fix
from bot.progress import ProgressEvent
from bot.settings import BotSettings
from service import models as service_models
from service.models import EditorRequest
from service.tools import editor
from service.tools.ops import refusal
from service.tools.registry import EDITOR_STEPS
from service.tools.registry import agent_tools as service_agent_tools
from tests.fakes.anthropic import (
    EDITOR,
    FakeAnthropic,
    end_turn,
    overloaded,
    review_fail,
    review_pass,
    tool_use,
    tool_uses,
)

CALC = "def add(a, b):\n    return a + b\n\n\ndef divide(a, b):\n    return a * b\n"
FILES = {
    "calc.py": CALC,
    "README.md": "# calc\n",
    "util/helpers.py": "def helper():\n    return 1\n",
    "util/more.py": "X = 1\n",
    "util/other.py": "Y = 2\n",
}
REPORT = FixRequest(
    repo="octo/calc",
    title="divide() multiplies instead of dividing",
    body="Calling `divide(6, 3)` in calc.py returns 18, expected 2.",
    requested_by="alice",
)


# --- answers as the service sends them ---------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)
SERVICE_NAME = {"EditResult": "EditorResult"}  # where the SDK's name for an answer is not the service's


def wire(model: type[M], data: Mapping[str, Any]) -> M:
    """A fake's answer as the service would send it: checked by the service's own model of it (so a
    fake cannot drift from the contract), then read by the SDK's model (what the bot sees)."""
    theirs: type[BaseModel] = getattr(service_models, SERVICE_NAME.get(model.__name__, model.__name__))
    return model.model_validate_json(theirs.model_validate(dict(data)).model_dump_json(by_alias=True))


def api_error(status: int, code: str, message: str, details: Mapping[str, Any] | None = None) -> APIError:
    """The SDK's exception for a contract error answer (what the bot catches)."""
    return error_class(status, code)(message, status=status, code=code, details=details)


def job_answer(**fields: Any) -> Job:
    limits = {
        "memory_mb": 1024, "cpus": 1.0, "pids": 256, "disk_mb": 2048, "tool_timeout_s": 30,
        "lint_timeout_s": 120, "output_cap_kb": 1024,
    }  # fmt: skip
    base: dict[str, Any] = {
        "id": "job_1", "status": "ready", "repo": None, "ref": None, "base_sha": "b" * 40,
        "language": "python", "image": "dockyard/python:test", "container_id": "c0ffee", "limits": limits,
        "labels": {}, "created_at": "2026-11-01T00:00:00Z", "expires_at": "2026-11-01T01:00:00Z",
        "error": None, "commits": [],
    }  # fmt: skip
    return wire(Job, base | fields)


def linter_run(diagnostics: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    diags = diagnostics or []
    new = sum(1 for d in diags if d["new"])
    return {
        "name": "ruff", "language": "python", "rule": "pyproject.toml [tool.ruff]",
        "image": "dockyard/python:test", "command": ["ruff", "check", "--output-format=json"], "files": 1,
        "exit_code": 1 if diags else 0, "duration_ms": 12, "timed_out": False, "oom_killed": False,
        "diagnostics": diags, "new_count": new, "base_checked": True, "output": "", "output_truncated": False,
    } | fields  # fmt: skip


def lint_result(status: str, linters: list[dict[str, Any]], **fields: Any) -> LintResult:
    return wire(LintResult, {"status": status, "linters": linters} | fields)


def run_result(status: str, **fields: Any) -> TestResult:
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0} | fields.pop("counts", {})
    base: dict[str, Any] = {
        "status": status, "language": "python", "command": ["python", "-m", "pytest"],
        "rule": "pyproject.toml [tool.pytest]", "image": "dockyard/python:test", "tool_source": "image",
        "env": None, "exit_code": 0 if status == "passed" else 1, "duration_ms": 800, "timed_out": False,
        "oom_killed": False, "counts": counts, "failures": [], "output": "", "output_truncated": False,
        "skipped_reason": None, "base_checked": True, "limits": None, "clamped": [], "error": None,
    }  # fmt: skip
    return wire(TestResult, base | fields)


def lint_ok() -> LintResult:
    return lint_result("passed", [linter_run()])


def run_ok() -> TestResult:
    return run_result("passed", counts={"passed": 2})


def run_new(test_id: str, message: str) -> TestResult:
    failure = {"id": test_id, "message": message, "path": "test_calc.py", "line": 5, "new": True}
    return run_result("failed", counts={"passed": 1, "failed": 1}, failures=[failure])


def lint_new(path: str, line: int, code: str, message: str) -> LintResult:
    diag = {"path": path, "line": line, "column": 1, "code": code, "message": message, "severity": "error"}
    return lint_result("failed", [linter_run([{**diag, "new": True}])])


class MemoryDockyard(DockyardPort):
    """The control API's contract over a dict of files (one job at a time)."""

    def __init__(self, files: Mapping[str, str], modes: Mapping[str, str] | None = None):
        super().__init__(AsyncDockyard("http://memory.invalid", "token"))
        self.base = dict(files)
        self.work = dict(files)
        self.base_modes = {p: (modes or {}).get(p, "100644") for p in files}
        self.modes = dict(self.base_modes)
        self.ignored: set[str] = set()  # paths .gitignore excludes (kept out of the diff)
        self.too_large: set[str] = set()  # paths whose whole read is cut at the read cap
        self.jobs: dict[str, Job] = {}
        self.deleted: list[str] = []
        self.commits: list[dict[str, Any]] = []
        self.branch_head: dict[str, str] = {}
        self.pulls: list[dict[str, Any]] = []
        self.lint_answers: list[LintResult] = []
        self.test_answers: list[TestResult] = []
        self.checks_for: Callable[[str, int], str] = lambda sha, n: "passed"
        self.calls: list[str] = []
        self.create_delay_s = 0.0

    async def agent_tools(self) -> list[AgentTool]:
        self.calls.append("agent_tools")
        return [AgentTool.model_validate(t) for t in service_agent_tools()]

    async def create_job(self, **kw: Any) -> Job:
        self.calls.append("create_job")
        await asyncio.sleep(self.create_delay_s)
        job = job_answer(
            id=f"job_{len(self.jobs) + 1}", repo=kw.get("repo"), labels=dict(kw.get("labels") or {})
        )
        self.jobs[job.id] = job
        return job

    async def list_jobs(self, **kw: Any) -> list[Job]:
        labels = kw.get("labels") or {}
        return [j for j in self.jobs.values() if all(j.labels.get(k) == v for k, v in labels.items())]

    async def delete_job(self, job_id: str) -> None:
        self.calls.append("delete_job")
        self.deleted.append(job_id)

    def _live(self, job_id: str) -> None:
        if job_id not in self.jobs or job_id in self.deleted:
            raise api_error(404, "job_not_found", f"no job {job_id}")

    async def read_file(
        self,
        job_id: str,
        path: str,
        *,
        start_line: int = 1,
        end_line: int | None = None,
        numbered: bool = False,
    ) -> ReadFileResult:
        self._live(job_id)
        self.calls.append(f"read_file {path}")
        if any(p.startswith(path.rstrip("/") + "/") for p in self.work):
            raise api_error(400, "not_a_file", f"not a regular file: {path}")
        if path not in self.work:
            raise api_error(404, "file_not_found", f"{path} does not exist")
        lines = self.work[path].splitlines(keepends=True)
        if path in self.too_large and end_line is None:
            lines = lines[:1]
        end = min(end_line or len(lines), len(lines))
        chosen = lines[start_line - 1 : end]
        text = "".join(f"{start_line + i:6}\t{ln}" if numbered else ln for i, ln in enumerate(chosen))
        return ReadFileResult(
            path=path,
            content=text,
            start_line=start_line,
            end_line=end,
            total_lines=len(lines),
            size_bytes=len(self.work[path]),
            truncated=path in self.too_large and end_line is None,
        )

    async def write_file(
        self, job_id: str, path: str, content: str, *, executable: bool | None = None
    ) -> WriteFileResult:
        self._live(job_id)
        self.calls.append(f"write_file {path}" + ("" if executable is None else f" x={executable}"))
        created = path not in self.work
        self.work[path] = content
        if executable is not None:
            self.modes[path] = "100755" if executable else "100644"
        elif created:
            self.modes[path] = "100644"
        return WriteFileResult(
            path=path,
            bytes_written=len(content.encode()),
            created=created,
            mode=self.modes[path],
            ignored=path in self.ignored,
        )

    async def delete_file(self, job_id: str, path: str) -> DeleteFileResult:
        self._live(job_id)
        self.calls.append(f"delete_file {path}")
        if path not in self.work:
            raise api_error(404, "file_not_found", f"{path} does not exist")
        del self.work[path]
        del self.modes[path]
        return DeleteFileResult(path=path, deleted=True)

    async def move_file(
        self, job_id: str, from_path: str, to_path: str, *, overwrite: bool = False
    ) -> MoveFileResult:
        self._live(job_id)
        self.calls.append(f"move_file {from_path} {to_path}")
        if from_path not in self.work:
            raise api_error(404, "file_not_found", f"{from_path} does not exist")
        if to_path in self.work and not overwrite:
            raise api_error(409, "file_exists", f"{to_path} exists")
        self.work[to_path] = self.work.pop(from_path)
        self.modes[to_path] = self.modes.pop(from_path)
        return wire(
            MoveFileResult,
            {
                "from": from_path,
                "to": to_path,
                "mode": self.modes[to_path],
                "ignored": to_path in self.ignored,
            },
        )

    async def replace_in_file(
        self, job_id: str, path: str, *, old: str, new: str, expected_count: int = 1
    ) -> ReplaceInFileResult:
        self._live(job_id)
        if path not in self.work:
            raise api_error(404, "file_not_found", f"{path} does not exist")
        n = self.work[path].count(old)
        if n != expected_count:
            raise api_error(
                409,
                "edit_mismatch",
                f"the text occurs {n} times in {path}, expected {expected_count}",
                {"occurrences": n, "closest_lines": [5]},
            )
        self.work[path] = self.work[path].replace(old, new)
        return ReplaceInFileResult(path=path, replacements=n, snippet=f"     6\t{new}")

    async def list_directory(self, job_id: str, path: str = ".", *, depth: int = 1) -> ListDirectoryResult:
        if path in self.work:
            raise api_error(400, "not_a_directory", f"not a folder: {path}")
        under = "" if path == "." else path.rstrip("/") + "/"
        if under and not any(p.startswith(under) for p in self.work):
            raise api_error(404, "file_not_found", f"{path} does not exist")
        entries = [
            {"path": p, "type": "file", "size": len(c)}
            for p, c in sorted(self.work.items())
            if p.startswith(under)
        ]
        return wire(ListDirectoryResult, {"path": path, "entries": entries, "truncated": False})

    async def edit_tool(self, job_id: str, tool_input: Mapping[str, Any]) -> EditResult:
        """The service's own editor logic over this fake's tools."""
        self._live(job_id)
        self.calls.append(f"edit {tool_input.get('command')} {tool_input.get('path')}")
        try:
            req = EditorRequest.model_validate(dict(tool_input))
        except ValidationError as e:
            raise api_error(400, "invalid_request", str(e)) from e

        async def step(tool: Any, r: Any) -> Any:
            try:
                if tool.name == "read_file":
                    got: Any = await self.read_file(
                        job_id, r.path, start_line=r.start_line, end_line=r.end_line, numbered=r.numbered
                    )
                elif tool.name == "write_file":
                    got = await self.write_file(job_id, r.path, r.content)
                elif tool.name == "replace_in_file":
                    got = await self.replace_in_file(
                        job_id, r.path, old=r.old, new=r.new, expected_count=r.expected_count
                    )
                else:
                    got = await self.list_directory(job_id, r.path, depth=r.depth)
            except APIError as e:
                raise refusal({"code": e.code, "message": e.message, "details": e.details}) from e
            return tool.exposure.result.model_validate(got.model_dump(by_alias=True))

        out = await editor.run(req, step, EDITOR_STEPS)
        return EditResult(content=out.content, is_error=out.is_error)

    async def search(self, job_id: str, pattern: str, **kw: Any) -> SearchResult:
        matches = []
        rx = re.compile(re.escape(pattern) if kw.get("fixed_string") else pattern)
        for p, c in sorted(self.work.items()):
            for i, line in enumerate(c.splitlines(), 1):
                m = rx.search(line)
                if m:
                    matches.append({"path": p, "line": i, "column": m.start() + 1, "text": line})
        return wire(SearchResult, {"matches": matches, "truncated": False, "files_searched": len(self.work)})

    async def lint(self, job_id: str, **kw: Any) -> LintResult:
        self.calls.append("lint")
        return self.lint_answers.pop(0) if self.lint_answers else lint_ok()

    async def test(self, job_id: str, **kw: Any) -> TestResult:
        self.calls.append("test")
        return self.test_answers.pop(0) if self.test_answers else run_ok()

    async def diff(self, job_id: str) -> DiffResult:
        files, patch = [], ""
        for p in sorted((set(self.base) | set(self.work)) - self.ignored):
            a, b = self.base.get(p), self.work.get(p)
            old_mode, mode = self.base_modes.get(p), self.modes.get(p)
            if a == b and old_mode == mode:
                continue
            status = "added" if a is None else "deleted" if b is None else "modified"
            old, new = (a or "").splitlines(True), (b or "").splitlines(True)
            hunks = list(difflib.unified_diff(old, new, f"a/{p}", f"b/{p}"))[2:]
            plus = sum(1 for ln in hunks if ln.startswith("+"))
            minus = sum(1 for ln in hunks if ln.startswith("-"))
            changed_mode = status == "modified" and old_mode != mode
            files.append(
                {"path": p, "status": status, "mode": mode or old_mode, "binary": False}
                | {"additions": plus, "deletions": minus}
                | ({"old_mode": old_mode} if changed_mode else {})
            )
            modes = f"old mode {old_mode}\nnew mode {mode}\n" if changed_mode else ""
            patch += f"diff --git a/{p} b/{p}\n{modes}--- a/{p}\n+++ b/{p}\n" + "".join(hunks)
        adds = sum(f["additions"] for f in files)
        dels = sum(f["deletions"] for f in files)
        return wire(
            DiffResult,
            {
                "base_sha": "b" * 40,
                "files": files,
                "patch": patch,
                "patch_truncated": False,
                "stats": {"files": len(files), "additions": adds, "deletions": dels},
            },
        )

    def _tree_sha(self) -> str:
        return hashlib.sha1(
            repr((sorted(self.work.items()), sorted(self.modes.items()))).encode()
        ).hexdigest()

    async def commit(self, job_id: str, **kw: Any) -> CommitResult:
        self._live(job_id)
        self.calls.append("commit")
        sha = hashlib.sha1((self._tree_sha() + kw["message"]).encode()).hexdigest()
        if self.branch_head.get(kw["branch"]) != sha:
            self.commits.append({"sha": sha, **kw, "files": dict(self.work), "modes": dict(self.modes)})
            self.branch_head[kw["branch"]] = sha
        pr = None
        if kw.get("pull_request"):
            if not self.pulls:
                self.pulls.append({**kw["pull_request"], "head": kw["branch"], "number": 7})
            pr = {"number": 7, "url": "https://github.invalid/octo/calc/pull/7"}
        return wire(
            CommitResult, {"commit_sha": sha, "branch": kw["branch"], "files_changed": 1, "pull_request": pr}
        )

    async def checks(self, job_id: str, *, sha: str | None = None, wait_s: float = 0) -> ChecksResult:
        assert sha is not None
        n = [c["sha"] for c in self.commits].index(sha) + 1
        status = self.checks_for(sha, n)
        checks = (
            []
            if status == "no_ci"
            else [
                {
                    "name": "tests",
                    "status": "completed" if status != "pending" else "in_progress",
                    "conclusion": {"passed": "success", "failed": "failure"}.get(status),
                }
            ]
        )
        details = {"failed": [{"name": "tests", "conclusion": "failure"}]} if status == "failed" else {}
        return wire(ChecksResult, {"status": status, "sha": sha, "checks": checks, "details": details})


def settings(ai: FakeAnthropic, **kw: Any) -> BotSettings:
    base: dict[str, Any] = dict(
        api_url="http://memory.invalid",
        api_token="t" * 20,
        anthropic_api_key=ai.api_key,
        anthropic_base_url=ai.base_url,
        max_rounds=3,
        ci_timeout_s=5,
        model_retries=3,
    )
    base.update(kw)
    return BotSettings.model_validate(base)


class Collect:
    def __init__(self) -> None:
        self.events: list[ProgressEvent] = []

    async def emit(self, event: ProgressEvent) -> None:
        self.events.append(event)

    async def close(self) -> None:
        pass

    def texts(self) -> list[str]:
        return [e.text for e in self.events]


FIX = dict(command="str_replace", path="calc.py", old_str="    return a * b", new_str="    return a / b")


async def fix(
    ai: FakeAnthropic, mem: MemoryDockyard, req: FixRequest = REPORT, **kw: Any
) -> tuple[FixOutcome, Collect]:
    sink = Collect()
    s = settings(ai, **kw)
    outcome = await run_fix(req, s, client=mem, llm=make_llm(s), sinks=[sink])
    return outcome, sink


async def test_happy_path_opens_one_draft_pr(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(
        agent=[tool_use(EDITOR, **FIX), end_turn("Divide instead of multiplying in divide().")],
        review=[review_pass()],
    )
    outcome, sink = await fix(ai, mem)
    assert outcome.ok and outcome.passed_all, outcome.error
    assert outcome.pr_url == "https://github.invalid/octo/calc/pull/7"
    assert mem.work["calc.py"].endswith("return a / b\n")
    assert len(mem.commits) == 1, "the CI commit and the PR commit are the same commit"
    assert mem.deleted == ["job_1"] and mem.calls[-1] == "delete_job"
    pr = mem.pulls[0]
    assert pr["draft"] is True and pr["title"].startswith("Fix: divide()")
    body = pr["body"]
    assert "## Summary" in body and "Divide instead of multiplying" in body
    assert "## Files changed" in body and "`calc.py` (modified, +1 -1)" in body
    assert "<details>" in body and "Process log" in body and "#### Round 1" in body
    assert "lint: ✅ passed" in body and "self-review: ✅ passed" in body and "CI: ✅ passed" in body
    assert "tests: ✅ passed — 2 passed, 0 failed: no new failure" in body
    assert "**Files explored** (1 of at most 15): `calc.py`" in body
    assert "tokens" in body and "$" in body
    # the model is offered the service's tools, their schemas as the service declares them
    offered = ai.of_kind("agent")[0].body["tools"]
    # Claude's own editor first (typed: no schema), then the service's tools it does not replace
    assert offered[0] == {"type": "text_editor_20250728", "name": EDITOR, "max_characters": 60_000}
    assert [(t["name"], t["input_schema"]) for t in offered[1:]] == [
        (t["name"], t["input_schema"]) for t in service_agent_tools() if t["name"] not in SUPERSEDED
    ]
    assert mem.calls.index("agent_tools") < mem.calls.index("create_job"), "fetched before a job exists"
    assert mem.calls.count("agent_tools") == 1
    # the starting file set: calc.py was named in the report and shown up front, counted against the cap
    first_prompt = ai.of_kind("agent")[0].body["messages"][0]["content"][0]["text"]
    assert "calc.py — lines 1-6 of 6" in first_prompt and "return a * b" in first_prompt
    texts = sink.texts()
    for step in (
        "Cloning repo",
        "Reading files",
        "Generating fix (round 1)",
        "Running lint",
        "Running tests",
        "Self-review",
        "Waiting for CI",
        "Opening draft PR",
        "Cleaning up",
    ):
        assert step in texts, (step, texts)
    final = sink.events[-1]
    assert final.kind == "final" and final.final is not None and final.final.pr_url == outcome.pr_url
    assert final.total_usage.total_tokens > 0 and final.total_usage.cost_usd is not None
    assert final.final.files_changed == ["calc.py"] and (final.final.additions, final.final.deletions) == (
        1,
        1,
    )


async def test_lint_failure_feeds_round_two(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    mem.lint_answers = [lint_new("calc.py", 6, "F821", "Undefined name `c`"), lint_ok()]
    ai.script(
        agent=[
            tool_use(
                EDITOR,
                command="str_replace",
                path="calc.py",
                old_str="    return a * b",
                new_str="    return a / c",
            ),
            end_turn("Divide."),
            tool_use(EDITOR, command="str_replace", path="calc.py", old_str="a / c", new_str="a / b"),
            end_turn("Divide by b."),
        ],
        review=[review_pass()],
    )
    outcome, _ = await fix(ai, mem)
    assert outcome.ok and outcome.passed_all and len(outcome.rounds) == 2
    round2 = ai.user_texts()[-1]
    assert "Round 2 of 3" in round2 and "calc.py:6:1: F821 Undefined name `c`" in round2
    assert "-    return a * b" in round2 and "+    return a / c" in round2, "the diff so far is shown"
    assert [g.status for g in outcome.rounds[0].gates] == ["failed"]
    assert [g.status for g in outcome.rounds[1].gates] == ["passed", "passed", "passed", "passed"]
    assert outcome.rounds[0].usage is not None and outcome.rounds[1].usage is not None
    assert outcome.usage is not None
    assert (
        outcome.usage.total_tokens
        == outcome.rounds[0].usage.total_tokens + outcome.rounds[1].usage.total_tokens
    )


async def test_all_rounds_fail_best_attempt_is_published_with_a_note(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(
        agent=[
            tool_use(EDITOR, **FIX),
            end_turn("Divide."),
            end_turn("Still right."),
            end_turn("Sure."),
        ],
        review=[review_fail("no test added")] * 3,
    )
    outcome, _ = await fix(ai, mem)
    assert outcome.ok and not outcome.passed_all and len(outcome.rounds) == 3
    body = mem.pulls[0]["body"]
    assert "best attempt after 3 round(s)" in body and "did not pass every validation" in body
    assert "self-review (failed: no test added)" in body
    assert "CI" in body and "not run" in body


Call = tuple[str, dict[str, Any]]
BREAK: Call = (EDITOR, dict(command="str_replace", path="calc.py", old_str="a / b", new_str="a / / b"))


async def round_one_is_best(
    ai: FakeAnthropic, mem: MemoryDockyard, first: list[Call] | None = None, second: list[Call] | None = None
) -> tuple[FixOutcome, Collect]:
    """Round 1 fixes calc.py (plus `first`), passes lint and fails the review; round 2 breaks it (plus
    `second`) and fails lint: round 1 is the best attempt, to be put back before the PR."""
    mem.lint_answers = [lint_ok(), lint_new("calc.py", 6, "E999", "SyntaxError")]
    ai.script(
        agent=[
            tool_uses([(EDITOR, FIX), *(first or [])]),
            end_turn("Divide."),
            tool_uses([BREAK, *(second or [])]),
            end_turn("Broke it."),
        ],
        review=[review_fail("needs a zero check")],
    )
    return await fix(ai, mem, max_rounds=2)


async def test_best_round_that_cannot_be_restored_falls_back_to_the_last(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    mem.too_large = {"util/helpers.py"}  # its base cannot be captured whole
    helpers: Call = (
        EDITOR,
        dict(command="str_replace", path="util/helpers.py", old_str="return 1", new_str="return 2"),
    )
    outcome, _ = await round_one_is_best(ai, mem, second=[helpers])
    # round 1 got further, but round 2 changed a file whose base is unknown: say so, ship round 2
    assert outcome.ok and not outcome.passed_all and outcome.final_round == 2
    assert outcome.files_changed == ["calc.py", "util/helpers.py"]
    body = mem.pulls[0]["body"]
    assert "round 1 could not be restored (util/helpers.py cannot be put back)" in body
    assert "the PR carries the last round (2) instead" in body


async def test_best_round_restored_exactly(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    outcome, sink = await round_one_is_best(ai, mem)
    assert outcome.final_round == 1 and outcome.files_changed == ["calc.py"]
    assert mem.pulls[0]["body"].count("the PR carries round 1") == 1
    assert mem.commits[-1]["files"]["calc.py"] == CALC.replace("a * b", "a / b")
    assert "Restoring the best attempt (round 1)" in sink.texts()


async def test_a_file_added_after_the_best_round_is_deleted_to_restore_it(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    later: list[Call] = [
        (EDITOR, dict(command="create", path="test_calc.py", file_text="from calc import divide\n")),
        ("delete_file", dict(path="README.md")),
        ("move_file", {"from": "util/more.py", "to": "util/most.py"}),
    ]
    outcome, sink = await round_one_is_best(ai, mem, second=later)
    assert outcome.ok and not outcome.passed_all and outcome.final_round == 1, outcome.error
    assert outcome.files_changed == ["calc.py"]
    assert "Restoring the best attempt (round 1)" in sink.texts()
    assert "delete_file test_calc.py" in mem.calls and "delete_file util/most.py" in mem.calls
    committed = mem.commits[-1]["files"]
    assert committed == {**FILES, "calc.py": CALC.replace("a * b", "a / b")}
    assert mem.commits[-1]["modes"] == {p: "100644" for p in FILES}
    assert outcome.rounds[1].edits == [
        "replace_in_file `calc.py`",
        "write_file `test_calc.py`",
        "delete_file `README.md`",
        "move_file `util/more.py → util/most.py`",
    ]


async def test_a_write_under_an_ignored_path_is_flagged_to_the_model(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    mem.ignored = {"build/notes.txt"}
    ai.script(
        agent=[
            tool_uses(
                [(EDITOR, FIX), (EDITOR, dict(command="create", path="build/notes.txt", file_text="x"))]
            ),
            end_turn("Divide."),
        ],
        review=[review_pass()],
    )
    outcome, _ = await fix(ai, mem)
    assert outcome.ok and outcome.files_changed == ["calc.py"]
    note = ai.tool_results()[1]["content"]
    assert "File created successfully at: build/notes.txt" in note and "will NOT be part of the diff" in note


async def test_no_change_at_all_means_no_pr_and_exit_failure(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(agent=[end_turn("Looks fine to me.")] * 2)
    outcome, sink = await fix(ai, mem, max_rounds=2)
    assert not outcome.ok and outcome.pr_url is None and "made no change" in (outcome.error or "")
    assert mem.pulls == [] and mem.deleted == ["job_1"]
    assert "You did not change any file" in ai.user_texts()[-1]
    assert sink.events[-1].kind == "final" and sink.events[-1].final is not None
    assert not sink.events[-1].final.ok


async def test_file_cap_is_enforced_with_a_message_the_model_sees(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(
        agent=[
            tool_use(EDITOR, command="view", path="util/helpers.py"),
            tool_use(EDITOR, command="view", path="util/more.py"),
            tool_use(EDITOR, command="view", path="/workspace/calc.py"),  # a re-read: allowed
            tool_use(EDITOR, command="create", path="util/new.py", file_text="N = 1\n"),  # a new file
            tool_use(EDITOR, command="view", path="/workspace/util"),  # a folder: free
            tool_use(EDITOR, **FIX),
            end_turn("Divide."),
        ],
        review=[review_pass()],
    )
    outcome, _ = await fix(ai, mem, max_files=2)
    assert outcome.ok
    results = ai.tool_results()
    assert "`cat -n` on util/helpers.py" in results[0]["content"] and not results[0]["is_error"]
    assert results[1]["is_error"] and "file limit reached" in results[1]["content"]
    assert "CODE_FIX_MAX_FILES=2" in results[1]["content"]
    assert not results[2]["is_error"]
    assert results[3]["is_error"] and "file limit reached" in results[3]["content"]
    assert not results[4]["is_error"] and "/workspace/util/helpers.py" in results[4]["content"]
    assert "read_file util/more.py" not in mem.calls and "util/new.py" not in mem.work
    assert outcome.files_changed == ["calc.py"]


async def test_tool_errors_come_back_as_tool_results(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(
        agent=[
            tool_use(
                EDITOR, command="str_replace", path="calc.py", old_str="return a*b", new_str="return a/b"
            ),
            tool_use(EDITOR, command="view", path="nope.py"),
            tool_use(EDITOR, command="create", path="calc.py", file_text="oops"),
            tool_use("frobnicate", path="x"),
            tool_use(EDITOR, command="view"),
            tool_use(EDITOR, **FIX),
            end_turn("Divide."),
        ],
        review=[review_pass()],
    )
    # "frobnicate" is not a defined tool: the real API would never send it, but a bot must survive it
    outcome, _ = await fix(ai, mem)
    assert outcome.ok
    r = ai.tool_results()
    assert (
        r[0]["is_error"] and "no match found" in r[0]["content"] and "closest lines are 5" in r[0]["content"]
    )
    assert r[1]["is_error"] and "nope.py does not exist" in r[1]["content"]
    assert r[2]["is_error"] and "already exists: change it with `str_replace`" in r[2]["content"]
    assert r[3]["is_error"] and "unknown tool 'frobnicate'" in r[3]["content"]
    assert r[4]["is_error"] and "`path` is required" in r[4]["content"]
    assert not r[5]["is_error"]
    assert mem.work["calc.py"] != "oops"


async def test_a_tool_call_cut_at_the_output_limit_is_never_applied(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    cut = tool_use(EDITOR, command="create", path="fast_math.py", file_text="def add(a, b):\n    return a +")
    cut.stop_reason = "max_tokens"
    ai.script(
        agent=[cut, tool_use(EDITOR, **FIX), end_turn("Divide.")],
        review=[review_pass()],
    )
    outcome, _ = await fix(ai, mem)
    assert outcome.ok
    r = ai.tool_results()
    assert r[0]["is_error"] and "hit the output limit" in r[0]["content"]
    assert "fast_math.py" not in mem.work and "return a / b" in mem.work["calc.py"]


async def test_each_model_call_marks_only_its_newest_block_for_the_cache(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(
        agent=[
            tool_use(EDITOR, command="view", path="util/helpers.py"),
            tool_use(EDITOR, command="view", path="."),
            tool_use("search", pattern="divide"),
            tool_use(EDITOR, command="view", path="calc.py"),
            tool_use(EDITOR, **FIX),
            end_turn("Divide."),
        ],
        review=[review_pass()],
    )
    outcome, _ = await fix(ai, mem)
    assert outcome.ok and not ai.errors  # the fake refuses more than 4 breakpoints, as the API does
    for seen in ai.of_kind("agent"):
        messages = seen.body["messages"]
        marked = [
            (i, j)
            for i, m in enumerate(messages)
            if isinstance(m["content"], list)
            for j, b in enumerate(m["content"])
            if "cache_control" in b
        ]
        assert marked == [(len(messages) - 1, len(messages[-1]["content"]) - 1)]


async def test_malformed_review_is_a_failed_gate_with_the_raw_text_kept(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(
        agent=[tool_use(EDITOR, **FIX), end_turn("Divide."), end_turn("Checked again.")],
        review=[end_turn("LGTM, ship it!"), review_pass()],
    )
    outcome, _ = await fix(ai, mem)
    assert outcome.ok and outcome.passed_all and len(outcome.rounds) == 2
    review1 = outcome.rounds[0].gate("review")
    assert review1 is not None and review1.status == "failed" and review1.data["raw"] == "LGTM, ship it!"
    assert "could not be read" in ai.user_texts()[-1]
    assert "unparseable review answer" in mem.pulls[0]["body"] and "LGTM, ship it!" in mem.pulls[0]["body"]


async def test_ci_fails_then_passes(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    mem.checks_for = lambda sha, n: "failed" if n == 1 else "passed"
    ai.script(
        agent=[
            tool_use(
                EDITOR,
                command="str_replace",
                path="calc.py",
                old_str="    return a * b",
                new_str="    return a // b",
            ),
            end_turn("Integer divide."),
            tool_use(EDITOR, command="str_replace", path="calc.py", old_str="a // b", new_str="a / b"),
            end_turn("True divide."),
        ],
        review=[review_pass(), review_pass()],
    )
    outcome, _ = await fix(ai, mem)
    assert outcome.ok and outcome.passed_all and len(outcome.rounds) == 2
    assert "CI failed on your change. Failing checks: tests (failure)" in ai.user_texts()[-1]
    assert len({c["sha"] for c in mem.commits}) == 2 and mem.commits[-1]["files"]["calc.py"].endswith(
        "a / b\n"
    )


async def test_no_ci_skips_the_gate_and_pending_ci_stops_the_rounds(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    mem.checks_for = lambda sha, n: "no_ci"
    ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
    outcome, _ = await fix(ai, mem)
    assert outcome.passed_all and outcome.rounds[0].gates[-1].status == "skipped"

    mem = MemoryDockyard(FILES)
    mem.checks_for = lambda sha, n: "pending"
    ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
    outcome, _ = await fix(ai, mem, ci_timeout_s=0)
    assert outcome.ok and not outcome.passed_all and len(outcome.rounds) == 1
    assert "CI had not finished" in mem.pulls[0]["body"]


async def test_overloaded_model_api_is_retried(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.fail_next(529, times=2)
    ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
    outcome, _ = await fix(ai, mem)
    assert outcome.ok and outcome.passed_all
    assert [r.status for r in ai.requests[:3]] == [529, 529, 200]
    assert [r.headers.get("x-stainless-retry-count") for r in ai.requests[:3]] == ["0", "1", "2"]


async def test_model_api_down_fails_cleanly_and_deletes_the_job(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.fail_next(529, times=10)
    outcome, sink = await fix(ai, mem, model_retries=1)
    assert not outcome.ok and "OverloadedError" in (outcome.error or "")
    assert mem.deleted == ["job_1"]
    assert sink.events[-1].kind == "final"


async def test_turn_cap_ends_a_round_and_the_conversation_stays_valid(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(
        agent=[
            tool_use("search", pattern="divide"),
            tool_use(EDITOR, command="view", path="."),
            tool_use(EDITOR, **FIX),  # round 2: the first turn after the cap
            end_turn("Divide."),
        ],
        review=[review_pass()],
    )
    outcome, _ = await fix(ai, mem, max_turns=2)
    assert outcome.ok and len(outcome.rounds) == 2 and outcome.rounds[0].hit_turn_cap
    r = ai.tool_results()
    assert "calc.py:5:5: def divide(a, b):" in r[0]["content"]
    assert "util/helpers.py" in r[1]["content"]


async def test_cancellation_deletes_the_job(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.delay_s = 3.0
    ai.script(agent=[end_turn("slow")])
    s = settings(ai)
    task = asyncio.ensure_future(run_fix(REPORT, s, client=mem, llm=make_llm(s), sinks=[]))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if ai.requests:
            break
    assert ai.requests, "the fix never reached the model"  # cancelled during the model call
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert mem.deleted == ["job_1"]


async def test_cancellation_during_job_creation_finds_and_deletes_the_job(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    mem.create_delay_s = 0.3
    s = settings(ai)
    original = mem.create_job

    async def create(**kw: Any) -> Job:
        job = job_answer(status="creating", base_sha=None, labels=dict(kw.get("labels") or {}))
        mem.jobs[job.id] = job  # the service records the job before it clones
        return await original(**kw)

    mem.create_job = create  # type: ignore[method-assign]
    task = asyncio.ensure_future(run_fix(REPORT, s, client=mem, llm=make_llm(s), sinks=[]))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert mem.deleted == ["job_1"]


def test_outcome_json_names_the_validation(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
    outcome, _ = asyncio.run(fix(ai, mem))
    data = outcome.to_json()
    assert data["ok"] and data["rounds"] == 1 and data["files_changed"] == ["calc.py"]
    validation = data["validation"]
    assert isinstance(validation, list) and [v["gate"] for v in validation] == [
        "lint",
        "tests",
        "self-review",
        "CI",
    ]


async def test_a_gate_that_cannot_judge_does_not_block_but_is_not_a_pass(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    mem.lint_answers = [
        lint_result("error", [linter_run(exit_code=None, error="image dockyard/python is not built")])
    ]
    ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
    outcome, _ = await fix(ai, mem)
    assert outcome.ok and not outcome.passed_all and len(outcome.rounds) == 1
    assert [g.status for g in outcome.rounds[0].gates] == ["error", "passed", "passed", "passed"]
    body = mem.pulls[0]["body"]
    assert "did not pass every validation" in body and "lint (error: lint could not give a verdict" in body


async def test_model_api_failing_in_a_later_round_publishes_the_earlier_change(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    ai.script(
        agent=[tool_use(EDITOR, **FIX), end_turn("Divide."), overloaded(), overloaded()],
        review=[review_fail("no zero check")],
    )
    outcome, _ = await fix(ai, mem, model_retries=1)
    assert outcome.ok and not outcome.passed_all and outcome.final_round == 1, outcome.error
    assert outcome.rounds[1].interrupted and "OverloadedError" in outcome.rounds[1].interrupted
    body = mem.pulls[0]["body"]
    assert "round 2 was cut short (the model API failed: OverloadedError" in body and "- cut short:" in body
    assert mem.deleted == ["job_1"]


async def test_the_pr_targets_the_ref_when_it_is_a_branch(ai: FakeAnthropic) -> None:
    seen: list[Any] = []
    for ref, base, expected in (
        ("release-1", None, "release-1"),
        ("a" * 40, None, None),
        ("v1", "main", "main"),
    ):
        mem = MemoryDockyard(FILES)

        async def commit(job_id: str, original: Any = mem.commit, **kw: Any) -> CommitResult:
            seen.append(kw.get("base_branch"))
            return await original(job_id, **kw)  # type: ignore[no-any-return]

        mem.commit = commit  # type: ignore[method-assign]
        ai.reset()
        ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
        req = REPORT.model_copy(update={"ref": ref, "base": base})
        outcome, _ = await fix(ai, mem, req)
        assert outcome.ok
        assert seen[-1] == expected


async def test_a_new_test_failure_feeds_round_two_and_stops_before_review(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    mem.test_answers = [run_new("test_calc.py::test_divide", "assert 18 == 2"), run_ok()]
    ai.script(
        agent=[
            tool_use(EDITOR, **FIX),
            end_turn("Divide."),
            end_turn("Divide, really."),
        ],
        review=[review_pass()],
    )
    outcome, _ = await fix(ai, mem)
    assert outcome.ok and outcome.passed_all and len(outcome.rounds) == 2
    assert [(g.gate, g.status) for g in outcome.rounds[0].gates] == [("lint", "passed"), ("tests", "failed")]
    assert mem.calls.count("test") == 2
    round2 = ai.user_texts()[-1]
    assert "tests failed: 1 new failure(s): test_calc.py::test_divide" in round2
    assert "- test_calc.py::test_divide (test_calc.py:5):" in round2 and "assert 18 == 2" in round2
    assert len(ai.of_kind("review")) == 1, "the self-review ran only in the round whose tests passed"
    body = mem.pulls[0]["body"]
    assert "tests: ❌ failed — 1 new failure(s): test_calc.py::test_divide" in body
    assert "tests: ✅ passed" in body


async def test_no_tests_found_skips_the_gate_and_ci_still_runs(ai: FakeAnthropic) -> None:
    mem = MemoryDockyard(FILES)
    mem.test_answers = [
        run_result("passed", exit_code=None, skipped_reason="no tests found (pytest collected none)")
    ]
    ai.script(agent=[tool_use(EDITOR, **FIX), end_turn("Divide.")], review=[review_pass()])
    outcome, _ = await fix(ai, mem)
    assert outcome.passed_all and [g.status for g in outcome.rounds[0].gates] == [
        "passed",
        "skipped",
        "passed",
        "passed",
    ]
    assert outcome.rounds[0].gates[-1].gate == "ci", "CI still ran"
    assert "tests: ⏭️ skipped — tests skipped: no tests found" in mem.pulls[0]["body"]
