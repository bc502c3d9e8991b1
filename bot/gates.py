"""The gates a round's change must pass, in order: the repo's lint, its tests, an AI self-review, CI.

Each gate answers a `GateResult`: a status, a one-line summary for people (progress, PR body) and
`feedback` for the model's next round. A gate never raises for a verdict; only the service or the
model API failing outright propagates.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from dockyard_client.errors import APIError, DockyardError
from dockyard_client.models import ChecksResult, LintResult, TestResult
from pydantic import BaseModel, ConfigDict, ValidationError

from bot.client import DockyardPort

GateName = Literal["change", "lint", "tests", "review", "ci"]
GateStatus = Literal["passed", "failed", "skipped", "error", "timeout"]

LABELS: dict[str, str] = {
    "change": "change", "lint": "lint", "tests": "tests", "review": "self-review", "ci": "CI"
}
# How a gate's status is shown, in the PR body and in progress messages alike.
MARK: dict[str, str] = {
    "passed": "✅", "skipped": "⏭️", "failed": "❌", "error": "⚠️", "timeout": "⏳", "not run": "·"
}


@dataclass
class GateResult:
    gate: GateName
    status: GateStatus
    summary: str
    feedback: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Did not block: passed, skipped (nothing to check), or could give no verdict (error)."""
        return self.status in ("passed", "skipped", "error")

    @property
    def label(self) -> str:
        return LABELS[self.gate]


# --- lint -----------------------------------------------------------------------------------------

MAX_DIAGNOSTICS = 40


def lint_verdict(result: LintResult) -> GateResult:
    """Only new problems in the changed files count (the service marks them `new`)."""
    new = result.new_diagnostics
    count = sum(run.new_count for run in result.linters)  # the service's own count of new problems
    old = sum(1 for run in result.linters for d in run.diagnostics if not d.new)
    names = ", ".join(run.name for run in result.linters) or "no linter"
    data: dict[str, Any] = {
        "linters": [run.name for run in result.linters],
        "new": [
            {
                "linter": name,
                "path": d.path,
                "line": d.line,
                "column": d.column,
                "code": d.code,
                "message": d.message,
            }
            for name, d in new
        ],
        "old": old,
    }
    if result.status == "passed":
        if not result.linters:
            reason = "; ".join(f"{s.name}: {s.reason}" for s in result.skipped) or "no linter configured"
            return GateResult("lint", "skipped", f"no linter ran ({reason})", data=data)
        debt = f" ({old} old problem(s) left as they were)" if old else ""
        return GateResult("lint", "passed", f"{names}: no new problems{debt}", data=data)
    if result.status == "error":
        why = "; ".join(
            f"{run.name}: {run.error or 'no verdict'}" for run in result.linters if run.error or run.timed_out
        )
        return GateResult("lint", "error", f"lint could not give a verdict ({why or 'error'})", data=data)
    lines = [
        f"{d.path}:{d.line}:{d.column}: {d.code} {d.message} [{name}]" for name, d in new[:MAX_DIAGNOSTICS]
    ]
    if count > len(lines):
        lines.append(f"... and {count - len(lines)} more")
    summary = (
        f"{count} new problem(s): "
        + "; ".join(f"{d.path}:{d.line} {d.code}" for _, d in new[:5])
        + ("; ..." if count > 5 else "")
    )
    feedback = (
        "The repository's linters report new problems in the files you changed. Fix every one of them "
        "(do not silence them with ignore comments unless the code is right and the rule is wrong):\n"
        + "\n".join(lines)
    )
    return GateResult("lint", "failed", summary, feedback, data)


async def lint_gate(client: DockyardPort, job_id: str) -> GateResult:
    return lint_verdict(await client.lint(job_id))


# --- tests ----------------------------------------------------------------------------------------

MAX_FAILURES = 20
FAILURE_MESSAGE_CAP = 1500


def _counts(result: TestResult) -> str:
    c = result.counts
    parts = [f"{c.passed} passed", f"{c.failed} failed"]
    if c.errors:
        parts.append(f"{c.errors} error(s)")
    if c.skipped:
        parts.append(f"{c.skipped} skipped")
    return ", ".join(parts)


def tests_verdict(result: TestResult) -> GateResult:
    """Only failures the change introduced count (the service marks them `new`, flaky ones aside)."""
    new = result.new_failures
    old = [f for f in result.failures if not f.new]
    flaky = [f for f in result.failures if f.flaky]
    data: dict[str, Any] = {
        "command": result.command,
        "rule": result.rule,
        "counts": result.counts.model_dump(),
        "new": [{"id": f.id, "message": f.message, "path": f.path, "line": f.line} for f in new],
        "old": [f.id for f in old],
        "flaky": [f.id for f in flaky],
        "timed_out": result.timed_out,
        "oom_killed": result.oom_killed,
    }
    if result.skipped_reason:
        return GateResult("tests", "skipped", f"tests skipped: {result.skipped_reason}", data=data)
    extra = "".join(
        [
            f"; {len(old)} failing at base too, left as they were" if old else "",
            f"; {len(flaky)} flaky (passed on a re-run)" if flaky else "",
        ]
    )
    if result.status == "passed":
        return GateResult("tests", "passed", f"{_counts(result)}: no new failure{extra}", data=data)
    if result.status == "error":
        why = result.error or ("timed out" if result.timed_out else "no verdict")
        return GateResult("tests", "error", f"the tests could not give a verdict ({why})", data=data)
    if result.timed_out or result.oom_killed:
        what = "did not finish in time (a hang?)" if result.timed_out else "ran out of memory"
        summary = f"the test run {what}; at base_sha it finished"
        tail = "\n".join(result.output.strip().splitlines()[-30:])
        feedback = (
            f"With your change the repository's tests {what}, while they finish without it. Find what in "
            f"your change makes them {'hang' if result.timed_out else 'use so much memory'} and fix it."
            + (f"\nThe end of the test output:\n{tail}" if tail else "")
        )
        return GateResult("tests", "failed", summary, feedback, data)
    lines = []
    for f in new[:MAX_FAILURES]:
        where = f" ({f.path}:{f.line})" if f.path and f.line else f" ({f.path})" if f.path else ""
        message = f.message.strip()
        if len(message) > FAILURE_MESSAGE_CAP:
            message = message[:FAILURE_MESSAGE_CAP] + " [...]"
        lines.append(f"- {f.id}{where}:\n" + "\n".join("    " + ln for ln in message.splitlines()))
    if len(new) > MAX_FAILURES:
        lines.append(f"... and {len(new) - MAX_FAILURES} more")
    summary = (
        f"{len(new)} new failure(s): "
        + ", ".join(f.id for f in new[:5])
        + (", ..." if len(new) > 5 else "")
        + f" ({_counts(result)}{extra})"
    )
    feedback = (
        "The repository's tests pass without your change but these fail with it (command: "
        f"`{' '.join(result.command)}`). Fix your change so they pass again; change a test only if the "
        "test itself is wrong about the reported behaviour:\n" + "\n".join(lines)
    )
    return GateResult("tests", "failed", summary, feedback, data)


async def tests_gate(client: DockyardPort, job_id: str) -> GateResult:
    try:
        result = await client.test(job_id)
    except APIError as e:  # e.g. the service predates test runs, or refuses: no verdict, CI still runs
        return GateResult("tests", "error", f"tests could not run: {e.message}", data={"code": e.code})
    return tests_verdict(result)


# --- self-review ----------------------------------------------------------------------------------


class Review(BaseModel):
    model_config = ConfigDict(extra="ignore")

    verdict: Literal["pass", "fail"]
    correctness: str
    side_effects: str
    style: str
    problems: list[str] = []


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def parse_review(raw: str) -> Review | None:
    """The reviewer's JSON object, also inside a code fence or surrounded by prose; None if there
    is no object of the required shape."""
    text = raw.strip()
    fenced = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", text, re.S)
    candidates = [text]
    if fenced:
        candidates.insert(0, fenced.group(1))
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        if isinstance(data.get("verdict"), str):
            data["verdict"] = data["verdict"].strip().lower()
        for key in ("correctness", "side_effects", "style"):
            if key in data and not isinstance(data[key], str):
                data[key] = _as_text(data[key])
        if isinstance(data.get("problems"), list):
            data["problems"] = [_as_text(p) for p in data["problems"]]
        try:
            return Review.model_validate(data)
        except ValidationError:
            continue
    return None


def review_verdict(raw: str) -> GateResult:
    review = parse_review(raw)
    if review is None:
        return GateResult(
            "review",
            "failed",
            "the self-review's answer was not the required JSON object",
            "The self-review of your change could not be read (its answer was not the required JSON), so "
            "the change is not validated. Re-check your change against the report: is it correct, free of "
            "side effects, and in the style of the surrounding code? Improve it where it is not.",
            {"raw": raw},
        )
    data = review.model_dump()
    if review.verdict == "pass":
        return GateResult("review", "passed", f"approved: {review.correctness[:160]}", data=data)
    problems = review.problems or [review.correctness]
    feedback = (
        "A strict review of your change found problems to fix:\n"
        + "\n".join(f"- {p}" for p in problems)
        + f"\nCorrectness: {review.correctness}\nSide effects: {review.side_effects}\nStyle: {review.style}"
    )
    return GateResult("review", "failed", "; ".join(problems)[:300], feedback, data)


# --- CI -------------------------------------------------------------------------------------------

CI_POLL_S = 30.0


async def ci_gate(
    client: DockyardPort,
    job_id: str,
    sha: str,
    timeout_s: float,
    on_wait: Callable[[float], Awaitable[None]] | None = None,
) -> GateResult:
    """Wait (in slices, so progress can tick) for the commit's checks, up to `timeout_s`."""
    start = time.monotonic()
    result: ChecksResult | None = None
    while True:
        left = timeout_s - (time.monotonic() - start)
        try:
            result = await client.checks(job_id, sha=sha, wait_s=max(0.0, min(CI_POLL_S, left)))
        except APIError as e:
            return GateResult("ci", "error", f"checks could not be read: {e.message}", data={"code": e.code})
        except DockyardError as e:  # the service did not answer (after the client's retries)
            return GateResult("ci", "error", f"checks could not be read: {e}", data={"code": "transport"})
        if result.status != "pending" or time.monotonic() - start >= timeout_s:
            break
        if on_wait is not None:
            await on_wait(time.monotonic() - start)
    checks = [{"name": c.name, "status": c.status, "conclusion": c.conclusion} for c in result.checks]
    data: dict[str, Any] = {"sha": sha, "checks": checks, "details": result.details}
    if result.status == "passed":
        return GateResult("ci", "passed", f"{len(checks)} check(s) passed", data=data)
    if result.status == "no_ci":
        return GateResult("ci", "skipped", "no CI is configured for this repository", data=data)
    if result.status == "pending":
        pending = result.details.get("pending") or [c["name"] for c in checks if c["status"] != "completed"]
        return GateResult(
            "ci",
            "timeout",
            f"CI had not finished after {timeout_s:.0f} s "
            f"(pending: {', '.join(map(str, pending)) or 'unknown'})",
            data=data,
        )
    failed = result.details.get("failed") or [
        {"name": c["name"], "conclusion": c["conclusion"]}
        for c in checks
        if c["conclusion"] not in ("success", "neutral", "skipped")
    ]
    names = [f"{f.get('name')} ({f.get('conclusion')})" for f in failed if isinstance(f, dict)]
    feedback = (
        "CI failed on your change. Failing checks: "
        + (", ".join(names) or "unknown")
        + ". Find what in your change breaks them (tests, type checks, builds) and fix it."
    )
    return GateResult("ci", "failed", "failed: " + (", ".join(names) or "unknown"), feedback, data)
