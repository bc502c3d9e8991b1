"""`dockyard-bot serve`: token, requester roles, queueing with bounded concurrency; and the CLI's
refusals before it does anything."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.fixer import FixOutcome, FixRequest
from bot.progress import Sink
from bot.server import build_app
from bot.settings import BotSettings

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "serve-token-" + "x" * 16


class Runner:
    def __init__(self) -> None:
        self.active = 0
        self.max_active = 0
        self.seen: list[FixRequest] = []
        self.release = asyncio.Event()

    async def __call__(self, req: FixRequest, sinks: list[Sink]) -> FixOutcome:
        self.seen.append(req)
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.release.wait()
        finally:
            self.active -= 1
        if req.title == "boom":
            return FixOutcome(ok=False, passed_all=False, error="the model made no change")
        return FixOutcome(ok=True, passed_all=True, pr_url=f"https://gh.example/{req.repo}/pull/1")


@pytest.fixture
async def bot_server() -> AsyncIterator[tuple[str, Runner]]:
    settings = BotSettings.model_validate(
        dict(
            serve_token=TOKEN,
            users="alice:maintainer,bob:triager",
            allowed_roles="maintainer,admin",
            concurrency=1,
            api_token="a" * 20,
            anthropic_api_key="k",
            webhook_hosts="hooks.example",
        )
    )
    runner = Runner()
    app = build_app(settings, runner)
    web_runner = web.AppRunner(app)
    await web_runner.setup()
    await web.TCPSite(web_runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{web_runner.addresses[0][1]}", runner
    runner.release.set()
    await web_runner.cleanup()


REQ = {"repo": "octo/a", "ref": "main", "title": "crash", "body": "it crashes", "requested_by": "alice"}


async def post(url: str, body: Any, token: str | None = TOKEN) -> tuple[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as s, s.post(url + "/v1/fixes", json=body, headers=headers) as r:
        return r.status, await r.json()


async def get(url: str, path: str) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as s,
        s.get(url + path) as r,
    ):
        assert r.status == 200
        return dict(await r.json())


async def test_token_is_required(bot_server: tuple[str, Runner]) -> None:
    url, _ = bot_server
    status, body = await post(url, REQ, token=None)
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, _ = await post(url, REQ, token="wrong")
    assert status == 401
    async with aiohttp.ClientSession() as s, s.get(url + "/healthz") as r:
        assert r.status == 200


@pytest.mark.parametrize(
    ("who", "reason"),
    [
        (
            "bob",
            "requested_by 'bob' has role 'triager', which may not request fixes "
            "(allowed roles: admin, maintainer)",
        ),
        (
            "eve",
            "requested_by 'eve' has no role in DOCKYARD_BOT_USERS; "
            "only roles admin, maintainer may request fixes",
        ),
        (None, "requested_by is required"),
    ],
)
async def test_requesters_without_an_allowed_role_are_refused(
    bot_server: tuple[str, Runner], who: str | None, reason: str
) -> None:
    url, runner = bot_server
    status, body = await post(url, {**REQ, "requested_by": who})
    assert status == 403 and body["error"]["code"] == "forbidden" and reason in body["error"]["message"]
    assert runner.seen == []


async def test_bad_requests(bot_server: tuple[str, Runner]) -> None:
    url, _ = bot_server
    status, body = await post(url, {**REQ, "repo": "not a repo"})
    assert status == 400 and body["error"]["message"].startswith("repo:")
    status, body = await post(url, {**REQ, "webhook": "https://evil.example/x"})
    assert status == 400 and "DOCKYARD_BOT_WEBHOOK_HOSTS" in body["error"]["message"]
    status, body = await post(url, [1, 2])
    assert status == 400


async def test_requests_queue_and_run_one_at_a_time(bot_server: tuple[str, Runner]) -> None:
    url, runner = bot_server
    ids = []
    for title in ("one", "boom", "three"):
        status, body = await post(url, {**REQ, "title": title, "webhook": "https://hooks.example/x"})
        assert status == 202 and body["status"] == "queued"
        ids.append(body["id"])
    await asyncio.sleep(0.1)
    assert runner.active == 1
    first = await get(url, f"/v1/fixes/{ids[0]}")
    assert first["status"] == "running" and "webhook" not in first["request"]
    runner.release.set()
    for _ in range(100):
        states = [(await get(url, f"/v1/fixes/{i}"))["status"] for i in ids]
        if "queued" not in states and "running" not in states:
            break
        await asyncio.sleep(0.05)
    assert states == ["done", "failed", "done"] and runner.max_active == 1
    done = await get(url, f"/v1/fixes/{ids[0]}")
    assert done["outcome"]["pr_url"] == "https://gh.example/octo/a/pull/1"
    failed = await get(url, f"/v1/fixes/{ids[1]}")
    assert failed["error"] == "the model made no change"
    listing = await get(url, "/v1/fixes")
    assert [f["id"] for f in listing["fixes"]] == ids[::-1]


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("DOCKYARD_", "ANTHROPIC_", "CODE_FIX_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env={**clean, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "sdk")]), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_names_missing_configuration(tmp_path: Path) -> None:
    r = cli("fix", "--repo", "octo/a", "--title", "t", "--body", "b")
    assert (
        r.returncode == 2 and "DOCKYARD_API_TOKEN is not set" in r.stderr and "ANTHROPIC_API_KEY" in r.stderr
    )
    assert "Traceback" not in r.stderr and r.stdout == ""
    r = cli("serve", DOCKYARD_API_TOKEN="a" * 20, ANTHROPIC_API_KEY="k")
    assert r.returncode == 2 and "DOCKYARD_BOT_TOKEN" in r.stderr


def test_cli_usage_mistakes() -> None:
    r = cli("fix", "--repo", "octo/a", "--title", "t")
    assert r.returncode == 2 and "--body" in r.stderr
    r = cli(
        "fix",
        "--repo",
        "bad repo",
        "--title",
        "t",
        "--body",
        "b",
        DOCKYARD_API_TOKEN="a" * 20,
        ANTHROPIC_API_KEY="k",
    )
    assert r.returncode == 2 and "repo" in r.stderr and "Traceback" not in r.stderr


def test_cli_without_a_reachable_service_fails_cleanly() -> None:
    r = cli(
        "fix",
        "--repo",
        "octo/a",
        "--title",
        "t",
        "--body",
        "b",
        DOCKYARD_API_TOKEN="a" * 20,
        ANTHROPIC_API_KEY="k",
        DOCKYARD_API_URL="http://127.0.0.1:9",
    )
    assert r.returncode == 1 and "cannot reach dockyard" in r.stderr and "Traceback" not in r.stderr
    assert r.stdout == ""
