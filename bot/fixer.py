"""One fix, start to end: a job, a starting file set, rounds of (model → lint → tests → self-review → CI),
the best attempt as one commit with a draft PR — or, with a `PatchOut`, as a patch file and its
process log (no commit, no PR, CI skipped and said so) — and the job deleted whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import sys
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import anthropic
from anthropic import AsyncAnthropic
from dockyard_client.errors import APIError, DockyardError, FileNotFound
from dockyard_client.models import AgentTool, DiffResult, Job
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from bot.agent import UNKNOWN, Agent, FatalToolError, ToolBox, ToolEvent
from bot.client import DockyardPort
from bot.explore import Candidates, identifiers, paths_in
from bot.gates import GateResult, ci_gate, lint_gate, review_verdict, tests_gate
from bot.progress import FinalInfo, Progress, ProgressEvent, Sink
from bot.prompts import FIX_SYSTEM, REVIEW_SYSTEM, review_prompt
from bot.report import (
    FileStat,
    FileState,
    RoundRecord,
    commit_message,
    patch_report,
    pr_body,
    pr_title,
    validation_of,
)
from bot.settings import BotSettings
from bot.usage import Ledger, Usage

RESTORABLE_MODES = ("100644", "100755")
EDIT_TOOLS = ("replace_in_file", "write_file", "delete_file", "move_file")
PATCH_IN_PROMPT = 12_000
START_FILE_LINES = 400
OVERVIEW_ENTRIES = 200


RepoName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=200)]
CloneUrl = Annotated[str, StringConstraints(pattern=r"^(file|https?)://\S+$", max_length=4096)]


class FixRequest(BaseModel):
    """What to fix: the CLI's arguments, or one JSON request to `dockyard-bot serve`."""

    model_config = ConfigDict(extra="forbid")

    repo: RepoName | None = Field(None, description="GitHub owner/name")
    clone_url: CloneUrl | None = Field(
        None, description="instead of repo: any git URL the service may clone (file:// or http(s)://)"
    )
    ref: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    title: Annotated[str, StringConstraints(min_length=1, max_length=250, strip_whitespace=True)]
    body: Annotated[str, StringConstraints(max_length=50_000)] = ""
    branch: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/+-]{1,200}$")] | None = None
    base: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._/+-]{1,200}$")] | None = Field(
        None, description="the PR's base branch (default: --ref when it is a branch, else the default branch)"
    )
    requested_by: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    webhook: Annotated[str, StringConstraints(max_length=2048)] | None = Field(
        None, description="progress webhook (Discord-compatible JSON)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> FixRequest:
        if (self.repo is None) == (self.clone_url is None):
            raise ValueError("give exactly one of repo (GitHub owner/name) and clone_url")
        return self

    @property
    def source(self) -> str:
        """What is fixed, for people: the repo, or the clone URL without any credentials in it."""
        if self.repo is not None:
            return self.repo
        assert self.clone_url is not None
        parts = urlsplit(self.clone_url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=host))

    @field_validator("webhook")
    @classmethod
    def _http_only(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[^\s/]+", v):
            raise ValueError("the webhook must be an http(s) URL")
        return v


@dataclass(frozen=True)
class PatchOut:
    """Deliver the fix as files instead of a pull request: the patch (`git apply`-able) and the
    process log (what a PR body would have carried, plus the progress lines)."""

    patch: Path
    log: Path

    @classmethod
    def beside(cls, patch: Path, log: Path | None = None) -> PatchOut:
        return cls(patch, log if log is not None else patch.with_name(patch.name + ".log"))


CI_SKIPPED = "no pull request with --patch-out: nothing was pushed, so no CI ran"


@dataclass
class FixOutcome:
    ok: bool  # the fix was delivered: a draft PR opened, or (--patch-out) the patch written
    passed_all: bool  # ... and its change passed every gate
    pr_url: str | None = None
    patch_path: str | None = None
    log_path: str | None = None
    pr_number: int | None = None
    branch: str | None = None
    commit_sha: str | None = None
    job_id: str | None = None
    rounds: list[RoundRecord] = field(default_factory=list)
    final_round: int | None = None
    files_changed: list[str] = field(default_factory=list)
    additions: int = 0
    deletions: int = 0
    usage: Usage | None = None
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        final = self._final()
        return {
            "ok": self.ok,
            "passed_all": self.passed_all,
            "pr_url": self.pr_url,
            "patch_path": self.patch_path,
            "log_path": self.log_path,
            "pr_number": self.pr_number,
            "branch": self.branch,
            "commit_sha": self.commit_sha,
            "rounds": len(self.rounds),
            "final_round": self.final_round,
            "files_changed": self.files_changed,
            "additions": self.additions,
            "deletions": self.deletions,
            "validation": [
                {"gate": g, "status": s, "summary": why}
                for g, s, why in (validation_of(final) if final else [])
            ],
            "tokens": self.usage.total_tokens if self.usage else 0,
            "cost_usd": self.usage.cost_usd if self.usage else None,
            "error": self.error,
        }

    def _final(self) -> RoundRecord | None:
        return next((r for r in self.rounds if r.number == self.final_round), None)


class FixFailed(Exception):
    """The fix cannot go on (no change at all, the job failed, the PR could not be opened)."""


def _branch_like(ref: str | None) -> str | None:
    """`ref` as the PR's base when it names a branch (not a commit sha or a tag ref)."""
    if ref is None or re.fullmatch(r"[0-9a-f]{7,40}", ref) or ref.startswith(("refs/tags/", "tags/")):
        return None
    return ref.removeprefix("refs/heads/")


def branch_name(title: str, run_id: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].strip("-") or "fix"
    return f"dockyard-bot/{slug}-{run_id[:6]}"


def make_llm(settings: BotSettings) -> AsyncAnthropic:
    key = settings.anthropic_api_key.get_secret_value() if settings.anthropic_api_key else None
    return AsyncAnthropic(
        api_key=key,
        base_url=settings.anthropic_base_url,
        max_retries=settings.model_retries,
        timeout=settings.model_timeout_s,
    )


def make_client(settings: BotSettings) -> DockyardPort:
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    return DockyardPort.connect(settings.api_url, token, timeout_s=settings.api_timeout_s)


class Fixer:
    def __init__(
        self,
        req: FixRequest,
        settings: BotSettings,
        client: DockyardPort,
        llm: AsyncAnthropic,
        progress: Progress,
        ledger: Ledger,
        run_id: str,
        patch_out: PatchOut | None = None,
    ):
        self.req = req
        self.patch_out = patch_out
        self.s = settings
        self.client = client
        self.llm = llm
        self.progress = progress
        self.ledger = ledger
        self.run_id = run_id
        self.branch = req.branch or branch_name(req.title, run_id)
        self.message = commit_message(req.title, req.requested_by)
        self.job: Job | None = None
        self.rounds: list[RoundRecord] = []
        self.base_modes: dict[str, str] = {}  # path -> mode at base, for every path a diff showed

    # --- the whole fix ------------------------------------------------------------------------------

    async def run(self) -> FixOutcome:
        outcome = FixOutcome(ok=False, passed_all=False, branch=self.branch, rounds=self.rounds)
        try:
            await self._work(outcome)
        except APIError as e:
            outcome.error = f"the dockyard service refused: {e.status} {e.code}: {e.message}"
        except (FixFailed, FatalToolError, DockyardError) as e:
            outcome.error = str(e)
        except anthropic.APIError as e:  # after the SDK's own retries
            outcome.error = f"the model API failed: {type(e).__name__}: {e}"
        except Exception as e:  # a bug: said in one line, with the traceback on stderr for whoever debugs it
            traceback.print_exc(file=sys.stderr)
            outcome.error = f"{type(e).__name__}: {e}"
        finally:
            outcome.job_id = self.job.id if self.job else None
            if self.job is not None:
                with contextlib.suppress(Exception):
                    await self.progress.step("Cleaning up")
            await self._delete_job()
            outcome.usage = self.ledger.total()
        final = outcome._final()
        await self.progress.final(
            FinalInfo(
                ok=outcome.ok,
                pr_url=outcome.pr_url,
                patch_path=outcome.patch_path,
                patch_mode=self.patch_out is not None,
                files_changed=outcome.files_changed,
                rounds=len(self.rounds),
                max_rounds=self.s.max_rounds,
                validation=validation_of(final) if final else [],
                passed_all=outcome.passed_all,
                additions=outcome.additions,
                deletions=outcome.deletions,
                error=outcome.error,
            )
        )
        return outcome

    async def _create_job(self) -> Job:
        labels = {"app": "dockyard-bot", "bot-run": self.run_id}
        if self.req.requested_by:
            labels["requested-by"] = self.req.requested_by
        try:
            return await self.client.create_job(
                repo=self.req.repo,
                clone_url=self.req.clone_url,
                ref=self.req.ref,
                ttl_s=self.s.job_ttl_s,
                labels=labels,
            )
        except BaseException:
            # Cancelled, timed out, or the connection dropped: the service finishes a creation it
            # started, so find that job by its label and remove it (nothing is found when none exists).
            with contextlib.suppress(Exception):
                async with asyncio.timeout(60):
                    for job in await self.client.list_jobs(labels={"bot-run": self.run_id}):
                        await self.client.delete_job(job.id)
            raise

    async def _delete_job(self) -> None:
        if self.job is None:
            return
        job_id = self.job.id
        task = asyncio.ensure_future(self.client.delete_job(job_id))
        try:
            async with asyncio.timeout(120):
                await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(60):
                    await task
            raise
        except Exception as e:
            await self.progress.note(f"could not delete job {job_id}: {e} (the service reaps it at its TTL)")

    async def _work(self, outcome: FixOutcome) -> None:
        await self.progress.step("Cloning repo")
        # The tools as the service declares them, once per fix (before a job exists: a service too
        # old to describe them is refused without creating one).
        service_tools: list[AgentTool] = await self.client.agent_tools()
        self.job = job = await self._create_job()
        if job.status != "ready":
            raise FixFailed(f"the job did not become ready: {job.error or job.status}")
        tools = ToolBox(self.client, job.id, self.s.max_files, service_tools, on_event=self._on_tool)
        if tools.unmapped:
            await self.progress.note(
                f"the service offers tools this bot does not know (not offered to the model): "
                f"{', '.join(tools.unmapped)}"
            )
        agent = Agent(
            llm=self.llm,
            model=self.s.model,
            max_tokens=self.s.max_tokens,
            max_turns=self.s.max_turns,
            tools=tools,
            ledger=self.ledger,
            system=FIX_SYSTEM.format(max_files=self.s.max_files),
        )
        await self.progress.step("Reading files")
        prompt = await self._first_prompt(job, tools)
        feedback: GateResult | None = None
        for n in range(1, self.s.max_rounds + 1):
            self.ledger.current_round = n
            record = RoundRecord(n)
            self.rounds.append(record)
            read_before, events_before = len(tools.files_read), len(tools.events)
            await self.progress.step(f"Generating fix (round {n})")
            if n > 1:
                assert feedback is not None
                prompt = await self._next_prompt(n, feedback)
            try:
                turn = await agent.run_round(prompt)
                record.summary, record.model_calls, record.hit_turn_cap = (
                    turn.summary,
                    turn.model_calls,
                    turn.hit_turn_cap,
                )
                record.files_read = tools.files_read[read_before:]
                record.edits = [
                    f"{e.name} `{e.path}`" + ("" if e.ok else " (refused)")
                    for e in tools.events[events_before:]
                    if e.name in EDIT_TOOLS
                ]
                feedback = await self._gates(record, agent, tools)
            except anthropic.APIError as e:
                # The SDK already retried (the round or its self-review). With an earlier round's
                # change in hand, publish that.
                if not any(r.files for r in self.rounds[:-1]):
                    raise
                record.interrupted = f"the model API failed: {type(e).__name__}: {e}"[:500]
                self._record_diff(record, await self.client.diff(job.id))
                record.usage = self.ledger.round(n)
                await self.progress.note(f"round {n}: {record.interrupted}")
                break
            record.usage = self.ledger.round(n)
            await self.progress.note(self._round_line(record))
            if feedback is None or feedback.status == "timeout":
                break
        await self._publish(outcome, tools)

    # --- prompts ------------------------------------------------------------------------------------

    async def _first_prompt(self, job: Job, tools: ToolBox) -> str:
        text = f"{self.req.title}\n{self.req.body}"
        parts = [f"# Bug report: {self.req.title}\n\n{self.req.body.strip() or '(no description)'}"]
        where = f"{self.req.source} at {self.req.ref or 'its default branch'}"
        if job.base_sha:
            where += f" (commit {job.base_sha[:12]})"
        parts.append(f"Repository: {where}; language: {job.language or 'unknown'}.")
        try:
            listing = await self.client.list_directory(job.id, ".", depth=2)
            entries = [e.path + ("/" if e.type == "dir" else "") for e in listing.entries[:OVERVIEW_ENTRIES]]
            more = " (more not shown)" if listing.truncated or len(listing.entries) > OVERVIEW_ENTRIES else ""
            parts.append("## Repository layout (two levels)" + more + "\n\n" + "\n".join(entries))
        except DockyardError as e:
            parts.append(f"(the layout could not be listed: {e})")
        cands = Candidates()
        for path in paths_in(text):
            for candidate in dict.fromkeys((path, path.lstrip("/"))):
                try:
                    await self.client.read_file(job.id, candidate, end_line=1)
                except DockyardError:
                    continue
                cands.mentioned.append(candidate)
                break
        names = identifiers(text)
        for name in names:
            try:
                found = await self.client.search(job.id, name, fixed_string=True, max_results=30)
            except DockyardError:
                continue
            for m in found.matches:
                cands.add_hit(name, m.path, m.line, m.text)
        ranked = cands.ranked()
        if names:
            lines = []
            for path in ranked[:12]:
                lines.extend(cands.hits.get(path, [])[:4])
            parts.append(
                "## Where the report's names occur\n\nSearched for: "
                + ", ".join(f"`{n}`" for n in names)
                + "\n\n"
                + ("\n".join(lines) if lines else "no match")
            )
        shown = []
        for path in ranked[: min(self.s.start_files, self.s.max_files)]:
            try:
                shown.append(await tools.read(path, 1, START_FILE_LINES))
            except Exception:
                continue
        if shown:
            parts.append(
                f"## Files read for you (they count toward your limit of {self.s.max_files} files)\n\n"
                + "\n\n".join(f"```\n{s}\n```" for s in shown)
            )
        await self.progress.note(
            f"starting file set: {', '.join(tools.files_read) or 'none'}"
            + (f" (searched: {', '.join(names)})" if names else "")
        )
        parts.append(
            "Find the cause of the bug and fix it with the tools. When the fix is complete, answer "
            "without a tool call, starting with a one-sentence summary."
        )
        return "\n\n".join(parts)

    async def _next_prompt(self, n: int, failed: GateResult) -> str:
        prev = self.rounds[-2]  # its gates fetched the diff; nothing changed the workspace since
        patch = prev.patch
        if len(patch) > PATCH_IN_PROMPT:
            patch = patch[:PATCH_IN_PROMPT] + "\n[... diff cut]"
        state = (
            f"Your change so far (the workspace keeps it; it is not reset):\n\n```diff\n{patch}\n```"
            if prev.files
            else "The workspace has no change yet."
        )
        return (
            f"# Round {n} of {self.s.max_rounds}\n\n{state}\n\n"
            f"It did not pass validation — {failed.label} {failed.status}: {failed.summary}\n\n"
            f"{failed.feedback}\n\n"
            "Fix this with the tools now, then answer without a tool call with a one-sentence summary of "
            "the complete change (all rounds together)."
        )

    # --- gates --------------------------------------------------------------------------------------

    async def _gates(self, record: RoundRecord, agent: Agent, tools: ToolBox) -> GateResult | None:
        """Run the gates in order; the first that fails is returned (None: all passed)."""
        assert self.job is not None
        job_id = self.job.id
        diff = await self.client.diff(job_id)
        self._record_diff(record, diff)
        if not diff.files:
            gate = GateResult(
                "change",
                "failed",
                "the model made no change",
                "You did not change any file. Find the cause of the reported bug and fix it with "
                "replace_in_file (or write_file for a new file).",
            )
            record.gates.append(gate)
            return gate
        record.snapshot = await self._snapshot(diff)

        await self.progress.step("Running lint")
        gate = await lint_gate(self.client, job_id)
        record.gates.append(gate)
        await self.progress.note(f"lint: {gate.status} — {gate.summary}")
        if not gate.ok:
            return gate

        await self.progress.step("Running tests")
        gate = await tests_gate(self.client, job_id)
        record.gates.append(gate)
        await self.progress.note(f"tests: {gate.status} — {gate.summary}")
        if not gate.ok:
            return gate

        await self.progress.step("Self-review")
        raw = await agent.complete(
            REVIEW_SYSTEM, review_prompt(self.req.title, self.req.body, diff.patch, record.summary)
        )
        gate = review_verdict(raw)
        record.gates.append(gate)
        await self.progress.note(f"self-review: {gate.status} — {gate.summary}")
        if not gate.ok:
            return gate

        if self.patch_out is not None:  # nothing is pushed, so there is nothing for CI to run on
            gate = GateResult("ci", "skipped", CI_SKIPPED)
            record.gates.append(gate)
            await self.progress.note(f"CI: {gate.status} — {gate.summary}")
            return None

        await self.progress.step("Committing")
        commit = await self.client.commit(job_id, branch=self.branch, message=self.message)
        record.commit_sha = commit.commit_sha

        async def tick(waited: float) -> None:
            await self.progress.step(f"Waiting for CI ({waited:.0f} s)")

        await self.progress.step("Waiting for CI")
        gate = await ci_gate(self.client, job_id, commit.commit_sha, self.s.ci_timeout_s, on_wait=tick)
        record.gates.append(gate)
        await self.progress.note(f"CI: {gate.status} — {gate.summary}")
        if gate.status == "timeout":
            return gate
        return None if gate.ok else gate

    def _record_diff(self, record: RoundRecord, diff: DiffResult) -> None:
        record.patch = diff.patch
        record.files = [FileStat(f.path, f.status, f.additions, f.deletions) for f in diff.files]
        for f in diff.files:  # a deleted file's mode is its base mode; a modified one's unless old_mode
            if f.status != "added":
                self.base_modes[f.path] = f.old_mode or f.mode

    async def _snapshot(self, diff: DiffResult) -> dict[str, FileState | None] | None:
        """The changed files as they are now, to put this round's state back later (None: cannot)."""
        assert self.job is not None
        snap: dict[str, FileState | None] = {}
        for f in diff.files:
            if f.status == "deleted":
                snap[f.path] = None
                continue
            if f.binary or f.mode not in RESTORABLE_MODES:  # a symlink or a submodule: not by write_file
                return None
            try:
                r = await self.client.read_file(self.job.id, f.path)
            except DockyardError:
                return None
            if r.truncated:
                return None
            snap[f.path] = FileState(r.content, f.mode)
        return snap

    def _round_line(self, r: RoundRecord) -> str:
        failed = next((g for g in r.gates if not g.ok), None)
        verdict = f"{failed.label} {failed.status}" if failed else "all gates passed"
        usage = r.usage.describe() if r.usage else ""
        return f"round {r.number}: {verdict} · {usage}"

    async def _on_tool(self, event: ToolEvent) -> None:
        if event.name == "read_file" and event.ok:
            await self.progress.detail(f"Reading {event.path}")
        elif event.name in EDIT_TOOLS:
            verb = {"delete_file": "Deleting", "move_file": "Moving"}.get(event.name, "Editing")
            await self.progress.detail(f"{verb} {event.path}" + ("" if event.ok else " (refused)"))
        elif event.name in ("search", "list_directory"):
            await self.progress.detail("Exploring the repository")

    # --- the pull request ---------------------------------------------------------------------------

    def _best(self) -> RoundRecord | None:
        changed = [r for r in self.rounds if r.files and not r.interrupted]
        passed = [r for r in changed if r.passed]
        if passed:
            return passed[-1]
        if not changed:
            return None
        return max(changed, key=lambda r: (r.score, r.number))

    async def _restore(self, best: RoundRecord, tools: ToolBox) -> tuple[str | None, DiffResult | None]:
        """Put the workspace back to `best`'s state. Returns (None, None) when done exactly;
        (why not, None) when nothing was written (the workspace still holds the last round);
        (why not, the diff now) when it was written but came out different."""
        assert self.job is not None
        last = self.rounds[-1]  # its diff was fetched when the round ended; nothing changed since
        if best is last or best.patch == last.patch:
            return None, None
        if best.snapshot is None:
            return f"round {best.number} could not be restored (a file was too large or binary)", None
        plan: dict[str, FileState | None] = {}  # None: the path must not exist
        for path in {f.path for f in last.files} | set(best.snapshot):
            if path in best.snapshot:
                plan[path] = best.snapshot[path]
                continue
            content = tools.base.get(path, UNKNOWN)  # back to base: the bot captured it before a change
            mode = self.base_modes.get(path)
            if content is None:
                plan[path] = None
            elif isinstance(content, str) and mode in RESTORABLE_MODES:
                plan[path] = FileState(content, mode)
            else:
                return f"round {best.number} could not be restored ({path} cannot be put back)", None
        for path, state in sorted(plan.items(), key=lambda item: item[1] is not None):  # deletions first
            if state is None:
                with contextlib.suppress(FileNotFound):  # already absent
                    await self.client.delete_file(self.job.id, path)
            else:
                await self.client.write_file(
                    self.job.id, path, state.content, executable=state.mode == "100755"
                )
        after = await self.client.diff(self.job.id)
        if after.patch != best.patch:
            return f"round {best.number} was restored only approximately", after
        return None, None

    async def _publish(self, outcome: FixOutcome, tools: ToolBox) -> None:
        assert self.job is not None
        best = self._best()
        if best is None:
            what = "no patch written" if self.patch_out is not None else "no pull request"
            raise FixFailed(f"the model made no change in {len(self.rounds)} round(s); {what}")
        last = self.rounds[-1]
        note: str | None = None
        approx: DiffResult | None = None
        if best is not last:
            await self.progress.step(f"Restoring the best attempt (round {best.number})")
            note, approx = await self._restore(best, tools)
            if approx is not None:
                # The workspace is near `best` but not it: describe what is there, and claim no pass
                # (the gates judged the exact round).
                best = replace(best)
                self._record_diff(best, approx)
                note = f"{note}; its gate results applied to the exact round, so no pass is claimed"
            elif note is not None and last.interrupted:
                raise FixFailed(f"{last.interrupted}; and {note}")
            elif note is not None:
                best = last
                note += f"; the {self._carrier} carries the last round ({best.number}) instead"
        if last.interrupted:
            cut = (
                f"round {last.number} was cut short ({last.interrupted}); "
                f"the {self._carrier} carries round {best.number}"
            )
            note = cut if note is None else f"{cut}; {note}"
        passed = best.passed and approx is None
        outcome.final_round = best.number
        outcome.passed_all = passed
        outcome.files_changed = [f.path for f in best.files]
        outcome.additions = sum(f.additions for f in best.files)
        outcome.deletions = sum(f.deletions for f in best.files)
        if self.patch_out is not None:
            await self._write_patch(outcome, best, passed, tools, note)
            return
        await self.progress.step("Opening draft PR")
        body = pr_body(
            title=self.req.title,
            requested_by=self.req.requested_by,
            final=best,
            rounds=self.rounds,
            max_rounds=self.s.max_rounds,
            passed_all=passed,
            files_explored=tools.files_read,
            max_files=self.s.max_files,
            model=self.s.model,
            total=self.ledger.total(),
            restore_note=note,
        )
        pull_request = {"title": pr_title(self.req.title), "body": body, "draft": True}
        base = self.req.base or _branch_like(self.req.ref)
        try:
            commit = await self.client.commit(
                self.job.id,
                branch=self.branch,
                message=self.message,
                base_branch=base,
                pull_request=pull_request,
            )
        except APIError as e:
            if base is None or self.req.base is not None or e.status not in (400, 502):
                raise
            # --ref was not a branch after all (a tag): open the PR against the default branch
            await self.progress.note(
                f"{base} is not a branch a PR can target ({e.message}); using the default"
            )
            commit = await self.client.commit(
                self.job.id, branch=self.branch, message=self.message, pull_request=pull_request
            )
        if commit.pull_request is None:
            raise FixFailed("the service committed but opened no pull request")
        outcome.commit_sha = commit.commit_sha
        outcome.pr_url = commit.pull_request.url
        outcome.pr_number = commit.pull_request.number
        outcome.ok = True

    # --- the patch file (--patch-out) ------------------------------------------------------------------

    @property
    def _carrier(self) -> str:
        return "patch" if self.patch_out is not None else "PR"

    async def _write_patch(
        self, outcome: FixOutcome, best: RoundRecord, passed: bool, tools: ToolBox, note: str | None
    ) -> None:
        """The workspace's diff (it holds `best` now) as a patch file, and the process log beside it."""
        assert self.job is not None and self.patch_out is not None
        out = self.patch_out
        await self.progress.step("Writing the patch")
        diff = await self.client.diff(self.job.id)
        if diff.patch_truncated or diff.timed_out:
            raise FixFailed(
                "the service's diff was cut at its output cap, so no complete patch can be written "
                "(raise the job's output_cap_kb or the service's cap); no patch written"
            )
        if not diff.files:
            raise FixFailed("the workspace has no change; no patch written")
        binary = [f.path for f in diff.files if f.binary]
        if binary:
            missing = (
                f"binary changes are not in the patch (git apply cannot carry them): {', '.join(binary)}"
            )
            await self.progress.note(missing)
            note = missing if note is None else f"{note}; {missing}"
            passed = False
        await self.progress.note(
            f"patch: {len(diff.files)} file(s), +{outcome.additions} -{outcome.deletions}"
        )
        report = patch_report(
            title=self.req.title,
            source=self.req.source,
            ref=self.req.ref,
            base_sha=diff.base_sha,
            requested_by=self.req.requested_by,
            final=best,
            rounds=self.rounds,
            max_rounds=self.s.max_rounds,
            passed_all=passed,
            files_explored=tools.files_read,
            max_files=self.s.max_files,
            model=self.s.model,
            total=self.ledger.total(),
            restore_note=note,
            progress=[_progress_line(e) for e in self.progress.events],
        )
        written: list[Path] = []
        for path, text in ((out.patch, diff.patch), (out.log, report)):  # both or neither
            try:
                await asyncio.to_thread(_write_atomically, path, text)
            except OSError as e:
                for done in written:
                    done.unlink(missing_ok=True)
                raise FixFailed(f"could not write {path}: {e.strerror or e}; no patch written") from e
            written.append(path)
        outcome.passed_all = passed
        outcome.patch_path, outcome.log_path = str(out.patch), str(out.log)
        outcome.ok = True


def _progress_line(event: ProgressEvent) -> str:
    rnd = f"[round {event.round}/{event.max_rounds}] " if event.round else ""
    return f"{event.at.astimezone().strftime('%H:%M:%S')} {rnd}{event.text}"


def _write_atomically(path: Path, text: str) -> None:
    """Write a file whole or not at all (a temporary file beside it, then renamed over it)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as f:
            f.write(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


async def run_fix(
    req: FixRequest,
    settings: BotSettings,
    *,
    client: DockyardPort | None = None,
    llm: AsyncAnthropic | None = None,
    sinks: list[Sink] | None = None,
    patch_out: PatchOut | None = None,
) -> FixOutcome:
    """Fix one bug report: a draft PR, or with `patch_out` a patch file and its log. Never raises
    for a failed fix (see `FixOutcome.error`); cancellation propagates after the job is deleted."""
    if req.clone_url is not None and patch_out is None:
        raise ValueError("a fix from a clone URL has no pull request to open: give patch_out")
    run_id = secrets.token_hex(8)
    ledger = Ledger(settings.model)
    progress = Progress(req.source, ledger, settings.max_rounds, sinks)
    own_client, own_llm = client is None, llm is None
    client = client or make_client(settings)
    llm = llm or make_llm(settings)
    try:
        return await Fixer(req, settings, client, llm, progress, ledger, run_id, patch_out).run()
    finally:
        await progress.close()
        if own_client:
            await client.close()
        if own_llm:
            with contextlib.suppress(Exception):
                await llm.close()
