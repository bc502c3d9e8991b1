"""Progress: terminal lines (plain and live), Discord-compatible webhook payloads, and a webhook
sender that keeps order, retries 429/5xx, gives up on 4xx, and never blocks the fix."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.progress import FinalInfo, Progress, TerminalSink, WebhookSink, webhook_payload
from bot.usage import Ledger


class U:
    def __init__(self, i: int, o: int) -> None:
        self.input_tokens, self.output_tokens = i, o


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


FINAL = FinalInfo(
    ok=True,
    pr_url="https://github.example/octo/a/pull/3",
    files_changed=["a.py"],
    rounds=2,
    max_rounds=3,
    validation=[("lint", "passed", "ok"), ("self-review", "passed", "approved"), ("CI", "skipped", "no CI")],
    passed_all=True,
    additions=3,
    deletions=1,
)


async def run_steps(progress: Progress, ledger: Ledger) -> None:
    await progress.step("Cloning repo")
    ledger.current_round = 1
    ledger.add(U(1200, 300))
    await progress.step("Generating fix (round 1)")
    await progress.detail("Reading a.py")
    await progress.note("lint: passed")
    ledger.current_round = 2
    ledger.add(U(2000, 100))
    await progress.step("Waiting for CI")
    await progress.final(FINAL)
    await progress.close()


async def test_plain_lines_when_not_a_tty() -> None:
    out = io.StringIO()
    ledger = Ledger("claude-sonnet-5-5")
    await run_steps(Progress("octo/a", ledger, 3, [TerminalSink(out)]), ledger)
    text = out.getvalue()
    assert "\r" not in text and "\x1b" not in text
    lines = text.splitlines()
    assert "Cloning repo" in lines[0] and "total 0 tok" in lines[0]
    assert "[round 1/3] Generating fix (round 1) · round 1,500 tok $0.0081 · total 1,500 tok $0.0081" in text
    assert "[round 2/3] Waiting for CI · round 2,100 tok $0.0075 · total 3,600 tok $0.0156" in text
    assert "Draft PR opened: https://github.example/octo/a/pull/3" in text
    assert "validation: ✅ lint · ✅ self-review · ⏭ CI" in text and "diff: 1 file(s), +3 -1" in text


async def test_live_status_line_on_a_tty() -> None:
    out = TTY()
    ledger = Ledger("claude-sonnet-5-5")
    await run_steps(Progress("octo/a", ledger, 3, [TerminalSink(out)]), ledger)
    text = out.getvalue()
    assert "\r\x1b[K" in text and "Reading a.py" in text
    assert "  [round 1/3] lint: passed\n" in text  # notes stay on screen
    assert text.rstrip().endswith("pull request: https://github.example/octo/a/pull/3")


def test_webhook_payload_is_discord_shaped_and_within_limits() -> None:
    ledger = Ledger("claude-sonnet-5-5")
    ledger.current_round = 1
    ledger.add(U(10, 10))
    progress = Progress("octo/a", ledger, 3)
    event = progress._event("step", "Running lint " + "x" * 5000)
    payload = webhook_payload(event)
    assert set(payload) == {"content", "embeds"} and len(payload["content"]) <= 2000
    embed = payload["embeds"][0]
    assert len(embed["title"]) <= 256
    assert {f["name"] for f in embed["fields"]} == {"Round", "Tokens (round)", "Tokens (total)"}
    final = webhook_payload(progress._event("final", "Draft PR opened", final=FINAL))["embeds"][0]
    fields = {f["name"]: f["value"] for f in final["fields"]}
    assert final["url"] == FINAL.pr_url and fields["Pull request"] == FINAL.pr_url
    assert (
        fields["Files changed"] == "a.py"
        and fields["Rounds"] == "2/3"
        and fields["Diff"] == "1 file(s), +3 -1"
    )
    assert "lint: passed" in fields["Validation"] and all(len(v) <= 1024 for v in fields.values())


class Hook:
    def __init__(self) -> None:
        self.got: list[dict[str, Any]] = []
        self.plan: list[int] = []
        self.delay_s = 0.0
        self.hold = False  # answer nothing until the fixture ends
        self.released = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.delay_s)
        if self.hold:
            await self.released.wait()
        status = self.plan.pop(0) if self.plan else 204
        if status < 300:
            self.got.append(await request.json())
        return web.Response(status=status, headers={"Retry-After": "0.01"} if status == 429 else {})


@pytest.fixture
async def hook() -> AsyncIterator[Hook]:
    h = Hook()
    app = web.Application()
    app.router.add_post("/hook", h.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    h.url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    yield h
    h.released.set()
    await runner.cleanup()


async def test_webhook_gets_every_step_in_order_with_retries(hook: Hook) -> None:
    hook.plan = [429, 500]  # the first event is retried twice
    ledger = Ledger("claude-sonnet-5-5")
    sink = WebhookSink(hook.url, retries=3)
    await run_steps(Progress("octo/a", ledger, 3, [sink]), ledger)
    titles = [p["embeds"][0]["title"] for p in hook.got]
    assert titles == [
        "Cloning repo",
        "Generating fix (round 1)",
        "lint: passed",
        "Waiting for CI",
        "Draft PR opened: https://github.example/octo/a/pull/3",
    ]
    assert sink.sent == 5 and sink.failures == 0


async def test_a_refusing_webhook_is_not_retried_and_does_not_fail_the_fix(hook: Hook) -> None:
    hook.plan = [400]
    ledger = Ledger("m")
    sink = WebhookSink(hook.url, retries=3)
    await run_steps(Progress("octo/a", ledger, 3, [sink]), ledger)
    assert sink.failures == 1 and len(hook.got) == 4


async def test_a_slow_webhook_never_blocks_progress(hook: Hook) -> None:
    hook.hold = True  # a webhook that never answers
    ledger = Ledger("m")
    sink = WebhookSink(hook.url, drain_s=0.2)
    progress = Progress("octo/a", ledger, 3, [sink])

    async def steps() -> None:
        for i in range(5):
            await progress.step(f"step {i}")

    await asyncio.wait_for(steps(), 10)  # a blocked sender would hang here
    await asyncio.wait_for(progress.close(), 10)  # drains within its bound, then gives up
    assert hook.got == []
