"""What a fix leaves behind: the round records, and the draft PR's title and body — or, with
`--patch-out`, the process log written beside the patch (the same report, as its own file)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bot.gates import MARK, GateResult
from bot.usage import Usage

PR_BODY_CAP = 60_000  # the contract allows 65,536
SUMMARY_CAP = 8000


@dataclass
class FileStat:
    path: str
    status: str
    additions: int = 0
    deletions: int = 0


@dataclass(frozen=True)
class FileState:
    """A file as a round left it, to put it back: its text and its git mode (100644 or 100755)."""

    content: str
    mode: str = "100644"


@dataclass
class RoundRecord:
    number: int
    summary: str = ""
    files_read: list[str] = field(default_factory=list)  # newly read in this round
    edits: list[str] = field(default_factory=list)  # "replace_in_file src/a.py", failed ones marked
    files: list[FileStat] = field(default_factory=list)
    patch: str = ""
    gates: list[GateResult] = field(default_factory=list)
    usage: Usage | None = None
    commit_sha: str | None = None
    model_calls: int = 0
    hit_turn_cap: bool = False
    interrupted: str | None = None  # why the round was cut short (the model API failed)
    snapshot: dict[str, FileState | None] | None = None  # path -> state (None: absent), to restore

    @property
    def score(self) -> int:
        """How far the change got through the gates, in order (0: no change at all)."""
        if not self.files:
            return 0
        score = 1
        for gate in self.gates:
            if gate.gate == "change":
                continue
            if not gate.ok:
                break
            score += 1
        return score

    @property
    def passed(self) -> bool:
        """Every gate gave a passing verdict (a gate that could not judge, `error`, is not a pass)."""
        gates = {g.gate for g in self.gates}
        verdicts_ok = all(g.status in ("passed", "skipped") for g in self.gates)
        return bool(self.files) and verdicts_ok and gates >= {"lint", "tests", "review", "ci"}

    def gate(self, name: str) -> GateResult | None:
        return next((g for g in self.gates if g.gate == name), None)




def validation_of(record: RoundRecord) -> list[tuple[str, str, str]]:
    """(gate label, status, summary) for lint, tests, self-review and CI; "not run" when a gate before
    failed."""
    out = []
    for name, label in (("lint", "lint"), ("tests", "tests"), ("review", "self-review"), ("ci", "CI")):
        g = record.gate(name)
        out.append((label, g.status, g.summary) if g else (label, "not run", "an earlier gate failed"))
    return out


def pr_title(title: str) -> str:
    t = re.sub(r"\s+", " ", title).strip()
    return ("Fix: " + t)[:256]


def commit_message(title: str, requested_by: str | None) -> str:
    who = f"\n\nRequested-by: {requested_by}" if requested_by else ""
    return f"{pr_title(title)}\n\nDraft fix by dockyard-bot.{who}"


def _summary_text(summary: str) -> str:
    return summary.strip() or "The model gave no summary of its change."


def pr_body(
    *,
    title: str,
    requested_by: str | None,
    final: RoundRecord,
    rounds: list[RoundRecord],
    max_rounds: int,
    passed_all: bool,
    files_explored: list[str],
    max_files: int,
    model: str,
    total: Usage,
    restore_note: str | None = None,
) -> str:
    parts: list[str] = []
    summary = _summary_text(final.summary)
    if len(summary) > SUMMARY_CAP:
        summary = summary[:SUMMARY_CAP] + " [...]"
    parts.append("## Summary\n\n" + summary)
    origin = f"Fixes the report **{title.strip()}**"
    if requested_by:
        origin += f", requested by {requested_by}"
    parts.append(origin + ".")
    parts += _verdict_and_files(final, rounds, passed_all, restore_note)
    log = _process_log(
        final=final,
        rounds=rounds,
        max_rounds=max_rounds,
        files_explored=files_explored,
        max_files=max_files,
        model=model,
        total=total,
        carrier="PR",
    )
    body = "\n\n".join(parts)
    details = "\n\n".join(log)
    tail = (
        "\n\n_Opened as a draft by dockyard-bot. It is never merged automatically: a person reviews and "
        "merges it._"
    )
    room = PR_BODY_CAP - len(body) - len(tail) - 200
    if len(details) > room:
        details = details[: max(0, room)] + "\n\n[process log cut to fit the PR body]"
    body += f"\n\n<details>\n<summary>Process log</summary>\n\n{details}\n\n</details>" + tail
    return body


def patch_report(
    *,
    title: str,
    source: str,
    ref: str | None,
    base_sha: str,
    requested_by: str | None,
    final: RoundRecord,
    rounds: list[RoundRecord],
    max_rounds: int,
    passed_all: bool,
    files_explored: list[str],
    max_files: int,
    model: str,
    total: Usage,
    restore_note: str | None = None,
    progress: list[str] | None = None,
) -> str:
    """The process log of a `--patch-out` run: what the PR body would have carried (summary,
    validation, files, every round's gates and usage), uncut, plus the progress lines."""
    parts = [f"# dockyard-bot: a patch for {title.strip()}"]
    where = f"{source} at {ref or 'its default branch'} (commit {base_sha})"
    origin = f"Fixes the report **{title.strip()}** in {where}"
    if requested_by:
        origin += f", requested by {requested_by}"
    parts.append(
        origin
        + ". Apply it with `git apply` on that commit. No pull request was opened and nothing was "
        "pushed: **CI was skipped.**"
    )
    parts.append("## Summary\n\n" + _summary_text(final.summary))
    parts += _verdict_and_files(final, rounds, passed_all, restore_note, before="applying it")
    log = _process_log(
        final=final,
        rounds=rounds,
        max_rounds=max_rounds,
        files_explored=files_explored,
        max_files=max_files,
        model=model,
        total=total,
        carrier="patch",
    )
    parts.append("## Process log\n\n" + "\n\n".join(log))
    if progress:
        fence = "~~~"
        parts.append(f"## Progress\n\n{fence}\n" + "\n".join(progress) + f"\n{fence}")
    return "\n\n".join(parts) + "\n"


def _verdict_and_files(
    final: RoundRecord,
    rounds: list[RoundRecord],
    passed_all: bool,
    restore_note: str | None,
    before: str = "merging",
) -> list[str]:
    parts: list[str] = []
    if passed_all:
        parts.append(
            "**Validation:** "
            + " · ".join(f"{MARK.get(s, '·')} {label}: {s}" for label, s, _ in validation_of(final))
        )
    else:
        failing = [
            f"{label} ({s}: {why})"
            for label, s, why in validation_of(final)
            if s not in ("passed", "skipped")
        ]
        parts.append(
            f"> [!WARNING]\n> **This is the best attempt after {len(rounds)} round(s); it did not pass every "
            f"validation.** Not passed: {'; '.join(failing) or 'unknown'}. "
            f"Review it with care before {before}."
        )
    files = "\n".join(f"- `{f.path}` ({f.status}, +{f.additions} -{f.deletions})" for f in final.files)
    parts.append("## Files changed\n\n" + (files or "- none"))
    if restore_note:
        parts.append(f"_Note: {restore_note}_")
    return parts


def _process_log(
    *,
    final: RoundRecord,
    rounds: list[RoundRecord],
    max_rounds: int,
    files_explored: list[str],
    max_files: int,
    model: str,
    total: Usage,
    carrier: str,
) -> list[str]:
    log: list[str] = []
    log.append(
        f"**Files explored** ({len(files_explored)} of at most {max_files}): "
        + (", ".join(f"`{p}`" for p in files_explored) or "none")
    )
    log.append(
        f"**Rounds:** {len(rounds)} of at most {max_rounds}; the {carrier} carries round {final.number}."
    )
    for r in rounds:
        lines = [f"#### Round {r.number}"]
        if r.files_read:
            lines.append("- read: " + ", ".join(f"`{p}`" for p in r.files_read))
        if r.edits:
            lines.append("- edits: " + "; ".join(r.edits))
        change = ", ".join(f"`{f.path}` +{f.additions} -{f.deletions}" for f in r.files) or "no change"
        lines.append(f"- change: {change}")
        first = _summary_text(r.summary).splitlines()[0][:300]
        lines.append(f"- model's summary: {first}")
        if r.interrupted:
            lines.append(f"- cut short: {r.interrupted}")
        if r.hit_turn_cap:
            lines.append(f"- stopped at the cap of model calls per round ({r.model_calls})")
        for g in r.gates:
            lines.append(f"- {g.label}: {MARK.get(g.status, '·')} {g.status} — {g.summary}")
            raw = g.data.get("raw") if g.gate == "review" else None
            if isinstance(raw, str):
                lines.append(
                    "  <details><summary>unparseable review answer</summary>\n\n```\n"
                    + raw[:2000].replace("```", "'''")
                    + "\n```\n  </details>"
                )
        if r.usage is not None:
            lines.append(f"- tokens: {r.usage.describe()} ({r.usage.calls} model call(s))")
        log.append("\n".join(lines))
    log.append(f"**Total:** {total.describe()} — model `{model}`, {total.calls} model call(s).")
    return log

