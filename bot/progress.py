"""Progress of a fix, to the terminal and (when given) to a webhook.

Every step ("Cloning repo", "Reading files", "Generating fix (round 2)", "Running lint", "Waiting
for CI", ...) is one `ProgressEvent` carrying this round's and the running token counts and cost.
The terminal shows a live status line when it is a TTY and plain timestamped lines otherwise (both
on stderr: stdout is kept for the PR URL). The webhook gets Discord-compatible JSON (`content` +
`embeds`); it is sent from a background queue so a slow or failing webhook never stalls the fix,
retried on 429/5xx (honouring `Retry-After`), and drained, within a bound, when the fix ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TextIO

import aiohttp

from bot.gates import MARK
from bot.usage import Ledger, Usage, format_cost

Kind = Literal["step", "detail", "note", "final"]


@dataclass
class FinalInfo:
    ok: bool
    pr_url: str | None
    files_changed: list[str]
    rounds: int
    max_rounds: int
    validation: list[tuple[str, str, str]]  # (gate label, status, summary)
    passed_all: bool
    additions: int = 0
    deletions: int = 0
    error: str | None = None
    patch_path: str | None = None  # --patch-out: where the patch went (no PR then)
    patch_mode: bool = False


@dataclass
class ProgressEvent:
    kind: Kind
    text: str
    repo: str
    round: int | None
    max_rounds: int
    round_usage: Usage | None
    total_usage: Usage
    elapsed_s: float
    final: FinalInfo | None = None
    at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def tokens_line(self) -> str:
        parts = []
        if self.round_usage is not None and self.round:
            parts.append(
                f"round {self.round_usage.total_tokens:,} tok {format_cost(self.round_usage.cost_usd)}"
            )
        parts.append(f"total {self.total_usage.total_tokens:,} tok {format_cost(self.total_usage.cost_usd)}")
        return " · ".join(parts)


class Sink(Protocol):
    async def emit(self, event: ProgressEvent) -> None: ...

    async def close(self) -> None: ...


class Progress:
    """Fan-out of progress events; knows the ledger, so every event carries current usage."""

    def __init__(self, repo: str, ledger: Ledger, max_rounds: int, sinks: list[Sink] | None = None):
        self.repo = repo
        self.ledger = ledger
        self.max_rounds = max_rounds
        self.sinks: list[Sink] = list(sinks or [])
        self.started = time.monotonic()
        self.events: list[ProgressEvent] = []

    def _event(self, kind: Kind, text: str, final: FinalInfo | None = None) -> ProgressEvent:
        rnd = self.ledger.current_round or None
        return ProgressEvent(
            kind=kind,
            text=text,
            repo=self.repo,
            round=rnd,
            max_rounds=self.max_rounds,
            round_usage=self.ledger.round() if rnd else None,
            total_usage=self.ledger.total(),
            elapsed_s=time.monotonic() - self.started,
            final=final,
        )

    async def _emit(self, event: ProgressEvent) -> None:
        self.events.append(event)
        for sink in self.sinks:
            try:
                await sink.emit(event)
            except Exception as e:  # progress must never break the fix
                print(f"dockyard-bot: progress sink failed: {e!r}", file=sys.stderr)

    async def step(self, text: str) -> None:
        """A new step begins (replaces the status line)."""
        await self._emit(self._event("step", text))

    async def detail(self, text: str) -> None:
        """A small step inside a step (a file read, an edit): the terminal shows it, webhooks do not."""
        await self._emit(self._event("detail", text))

    async def note(self, text: str) -> None:
        """Something worth keeping on screen (a gate's result, a round's outcome)."""
        await self._emit(self._event("note", text))

    async def final(self, info: FinalInfo) -> None:
        if info.patch_mode and info.ok:
            best = "" if info.passed_all else " (best attempt, not every check passed)"
            text = f"Patch written{best}: {info.patch_path}"
        elif info.patch_mode:
            text = f"No patch: {info.error or 'the fix failed'}"
        elif info.ok and info.passed_all:
            text = f"Draft PR opened: {info.pr_url}"
        elif info.ok:
            text = f"Draft PR opened (best attempt, not every check passed): {info.pr_url}"
        else:
            text = f"No pull request: {info.error or 'the fix failed'}"
        await self._emit(self._event("final", text, final=info))

    async def close(self) -> None:
        for sink in self.sinks:
            with contextlib.suppress(Exception):
                await sink.close()


def _fmt_elapsed(s: float) -> str:
    return f"{int(s // 60):02d}:{int(s % 60):02d}"


def validation_line(final: FinalInfo) -> str:
    # Text presentation (no U+FE0F): a terminal then gives each mark the width the status line counts.
    marks = [(MARK.get(status, "?").replace("\ufe0f", ""), label) for label, status, _ in final.validation]
    return " · ".join(f"{mark} {label}" for mark, label in marks) or "none"


class TerminalSink:
    """A live status line on a TTY, plain lines otherwise."""

    SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(self, stream: TextIO | None = None, *, live: bool | None = None, prefix: str = ""):
        self.stream = stream or sys.stderr
        self.prefix = prefix
        self.live = self.stream.isatty() if live is None else live
        self._status = ""
        self._last: ProgressEvent | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._spin = 0
        self._drawn_at = time.monotonic()

    def _status_text(self, e: ProgressEvent) -> str:
        rnd = f"[round {e.round}/{e.max_rounds}] " if e.round else ""
        return f"{rnd}{e.text} · {e.tokens_line()} · {_fmt_elapsed(e.elapsed_s)}"

    def _draw(self) -> None:
        if self._last is None:
            return
        spin = self.SPINNER[self._spin % len(self.SPINNER)]
        elapsed = self._last.elapsed_s + (time.monotonic() - self._drawn_at)
        e = self._last
        rnd = f"[round {e.round}/{e.max_rounds}] " if e.round else ""
        line = f"{spin} {rnd}{e.text} · {e.tokens_line()} · {_fmt_elapsed(elapsed)}"
        width = max(20, shutil.get_terminal_size((120, 24)).columns - 1)
        self.stream.write("\r\x1b[K" + line[:width])
        self.stream.flush()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self._spin += 1
            self._draw()

    async def emit(self, event: ProgressEvent) -> None:
        if not self.live:
            stamp = event.at.astimezone().strftime("%H:%M:%S")
            if event.kind == "final" and event.final is not None:
                self.stream.write(f"{self.prefix}[{stamp}] {event.text}\n")
                for line in final_lines(event):
                    self.stream.write(f"{self.prefix}           {line}\n")
            elif event.kind == "note":
                rnd = f"[round {event.round}/{event.max_rounds}] " if event.round else ""
                self.stream.write(f"{self.prefix}[{stamp}] {rnd}{event.text}\n")
            else:
                self.stream.write(f"{self.prefix}[{stamp}] {self._status_text(event)}\n")
            self.stream.flush()
            return
        if event.kind in ("step", "detail"):
            self._last, self._drawn_at = event, time.monotonic()
            self._draw()
            if self._ticker is None:
                self._ticker = asyncio.get_running_loop().create_task(self._tick())
            return
        self.stream.write("\r\x1b[K")
        if event.kind == "final" and event.final is not None:
            await self.close()
            self.stream.write(event.text + "\n")
            for line in final_lines(event):
                self.stream.write(f"  {line}\n")
        else:
            rnd = f"[round {event.round}/{event.max_rounds}] " if event.round else ""
            self.stream.write(f"  {rnd}{event.text}\n")
            self._draw()
        self.stream.flush()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def final_lines(event: ProgressEvent) -> list[str]:
    f = event.final
    assert f is not None
    if not f.ok and not f.files_changed:
        return [f"rounds: {f.rounds}/{f.max_rounds}", f"tokens: {event.total_usage.describe()}"]
    lines = [
        f"files changed: {', '.join(f.files_changed) or 'none'}",
        f"rounds: {f.rounds}/{f.max_rounds}",
        f"validation: {validation_line(f)}",
        f"diff: {len(f.files_changed)} file(s), +{f.additions} -{f.deletions}",
        f"tokens: {event.total_usage.describe()}",
    ]
    if f.pr_url:
        lines.append(f"pull request: {f.pr_url}")
    if f.patch_path:
        lines.append(f"patch: {f.patch_path}")
    return lines


# --- webhook ----------------------------------------------------------------------------------------

COLOR = {
    "step": 0x5865F2,
    "detail": 0x5865F2,
    "note": 0x99AAB5,
    "ok": 0x2ECC71,
    "partial": 0xF1C40F,
    "failed": 0xE74C3C,
}


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def webhook_payload(event: ProgressEvent) -> dict[str, Any]:
    """Discord-compatible: `content` plus one embed (limits: content 2000, title 256, description
    4096, field value 1024 characters)."""
    rnd = f"round {event.round}/{event.max_rounds}" if event.round else "setup"
    fields: list[dict[str, Any]] = [
        {"name": "Round", "value": rnd, "inline": True},
    ]
    if event.round_usage is not None and event.round:
        fields.append(
            {
                "name": "Tokens (round)",
                "value": f"{event.round_usage.total_tokens:,} · {format_cost(event.round_usage.cost_usd)}",
                "inline": True,
            }
        )
    fields.append(
        {
            "name": "Tokens (total)",
            "value": f"{event.total_usage.total_tokens:,} · {format_cost(event.total_usage.cost_usd)}",
            "inline": True,
        }
    )
    embed: dict[str, Any] = {
        "title": _cut(event.text, 256),
        "color": COLOR[event.kind] if event.kind != "final" else COLOR["failed"],
        "timestamp": event.at.isoformat(),
        "footer": {"text": f"dockyard-bot · {event.repo} · {_fmt_elapsed(event.elapsed_s)}"},
    }
    f = event.final
    if f is not None:
        embed["color"] = (
            COLOR["ok"] if f.ok and f.passed_all else COLOR["partial"] if f.ok else COLOR["failed"]
        )
        if f.pr_url:
            embed["url"] = f.pr_url
        fields = [
            {"name": "Patch", "value": _cut(f.patch_path or "none", 1024), "inline": False}
            if f.patch_mode
            else {"name": "Pull request", "value": f.pr_url or "none", "inline": False},
            {
                "name": "Files changed",
                "value": _cut(", ".join(f.files_changed) or "none", 1024),
                "inline": False,
            },
            {"name": "Rounds", "value": f"{f.rounds}/{f.max_rounds}", "inline": True},
            {
                "name": "Diff",
                "value": f"{len(f.files_changed)} file(s), +{f.additions} -{f.deletions}",
                "inline": True,
            },
            *fields[1:],
            {
                "name": "Validation",
                "value": _cut(
                    "\n".join(f"{label}: {status} — {summary}" for label, status, summary in f.validation)
                    or "none",
                    1024,
                ),
                "inline": False,
            },
        ]
        if f.error:
            embed["description"] = _cut(f.error, 4096)
    embed["fields"] = fields[:25]
    return {"content": _cut(f"**dockyard-bot** · {event.repo} · {event.text}", 2000), "embeds": [embed]}


class WebhookSink:
    """POSTs each event to a webhook in order, from a background task."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 10.0,
        retries: int = 3,
        drain_s: float = 15.0,
        session: aiohttp.ClientSession | None = None,
    ):
        self.url = url
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retries = retries
        self.drain_s = drain_s
        self._session = session
        self._own = session is None
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.failures = 0
        self.sent = 0

    async def emit(self, event: ProgressEvent) -> None:
        if event.kind == "detail":
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._queue.put_nowait(webhook_payload(event))

    async def _run(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        while True:
            payload = await self._queue.get()
            if payload is None:
                return
            await self._send(payload)

    async def _send(self, payload: dict[str, Any]) -> None:
        assert self._session is not None
        for attempt in range(self.retries + 1):
            delay = 0.5 * 2**attempt
            try:
                async with self._session.post(self.url, json=payload, timeout=self.timeout) as resp:
                    if resp.status < 300:
                        self.sent += 1
                        return
                    if resp.status != 429 and resp.status < 500:
                        break  # the webhook refuses this payload: retrying will not help
                    with contextlib.suppress(ValueError):
                        delay = float(resp.headers.get("Retry-After", delay))
            except (aiohttp.ClientError, TimeoutError):
                pass
            if attempt < self.retries:
                await asyncio.sleep(min(delay, 10.0))
        self.failures += 1

    async def close(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.drain_s)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        if self._session is not None and self._own:
            await self._session.close()
        self._session = None
