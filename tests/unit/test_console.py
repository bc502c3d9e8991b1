"""The console's auth and pages over the in-memory backend (no engine): a bot token is refused, a
login form opens a cookie session that works on /console only, logout and expiry end it, every
page is read-only, and what records hold (attacker-chosen paths, argv) shows as text."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.api.middleware import TokenTable, auth_middleware, errors_middleware
from service.app import routes
from service.app_keys import JOBS
from service.audit import AuditEntry
from service.console import pages
from service.console.sessions import COOKIE, Sessions
from service.settings import TokenInfo
from tests.conftest import FixtureRepo
from tests.fakes.jobs import BOT, harness

TOKENS = {
    "aud-" + "a" * 28: TokenInfo("auditor", "auditors"),
    "adm-" + "b" * 28: TokenInfo("admin", "ops"),
    "bot-" + "c" * 28: TokenInfo("bot", "team-a"),
}
AUDITOR, ADMIN, BOT_TOKEN = TOKENS
EVIL_PATH = "<script>alert('path')</script>.py"
EVIL_ARG = '"><img src=x onerror=alert(1)>'


@dataclass
class Console:
    client: TestClient[web.Request, web.Application]
    job_id: str
    db: Path

    async def login(self, token: str, **form: str) -> aiohttp.ClientResponse:
        return await self.client.post("/console/login", data={"token": token, **form}, allow_redirects=False)


@asynccontextmanager
async def console(
    tmp_path: Path, repo: FixtureRepo, ttl_s: float = 3600, clock: list[float] | None = None
) -> AsyncIterator[Console]:
    async with harness(tmp_path / "state", repo.path.parent) as h:
        table = routes()
        now = clock if clock is not None else [0.0]
        sessions = Sessions(ttl_s, 10, clock=lambda: now[0])
        app = web.Application(
            middlewares=[
                errors_middleware,
                auth_middleware(TOKENS, {(r.method, r.path): r for r in table}, sessions),
            ]
        )
        app[JOBS] = h.jobs
        for r in table:
            app.router.add_route(r.method, r.path, r.handler, name=r.handler.__name__)
        pages.setup(app, TokenTable(TOKENS), sessions)
        job = await h.jobs.create(h.request(repo.url), BOT)
        await h.store.audit(
            AuditEntry(
                actor=BOT,
                action="tool.write_file",
                outcome="ok",
                job_id=job.id,
                argv=["dockyard-tool", "write_file", EVIL_PATH, EVIL_ARG],
                duration_ms=7,
                bytes_in=9,
                details={"path": EVIL_PATH, "content_sha256": "ab" * 32, "before_sha256": None},
            )
        )
        async with TestClient(TestServer(app)) as client:
            yield Console(client, job.id, h.settings.state_dir / "dockyard.sqlite3")


async def test_no_token_is_401_and_a_bot_token_is_403(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with console(tmp_path, fixture_repo) as c:
        r = await c.client.get("/console")
        assert r.status == 401 and r.content_type == "text/html"
        assert "/console/login" in await r.text()  # the page says where to log in
        r = await c.client.get("/console", headers={"Authorization": f"Bearer {BOT_TOKEN}"})
        assert r.status == 403 and r.content_type == "text/html"
        r = await c.login(BOT_TOKEN)
        assert r.status == 403 and COOKIE not in r.cookies
        assert "may not use the console" in await r.text()
        r = await c.login("nope")
        assert r.status == 401 and COOKIE not in r.cookies
        # the API's own errors stay the contract's JSON
        r = await c.client.get("/v1/audit")
        assert r.status == 401 and r.content_type == "application/json"


async def test_login_sets_an_opaque_strict_cookie_that_works_on_the_console_only(
    tmp_path: Path, fixture_repo: FixtureRepo
) -> None:
    async with console(tmp_path, fixture_repo) as c:
        r = await c.login(AUDITOR, next="/console/audit")
        assert r.status == 303 and r.headers["Location"] == "/console/audit"
        cookie = r.cookies[COOKIE]
        assert cookie.value and AUDITOR not in cookie.value and cookie.value not in AUDITOR
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/console"
        assert int(cookie["max-age"]) == 3600
        jar = {COOKIE: cookie.value}
        for path in ("/console", "/console/audit", f"/console/jobs/{c.job_id}"):
            r = await c.client.get(path, cookies=jar)
            assert r.status == 200, (path, await r.text())
            assert "auditor-" in await r.text()  # the actor is shown, never the token
            assert AUDITOR not in await r.text()
        # the same cookie opens nothing outside /console
        for path in ("/v1/audit", "/v1/jobs", f"/v1/jobs/{c.job_id}"):
            r = await c.client.get(path, cookies=jar)
            assert r.status == 401, path
        # an admin logs in too; a redirect outside the console is not followed
        r = await c.login(ADMIN, next="//elsewhere.example/x")
        assert r.status == 303 and r.headers["Location"] == "/console"


async def test_logout_and_expiry_end_the_session(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with console(tmp_path, fixture_repo) as c:
        jar = {COOKIE: (await c.login(AUDITOR)).cookies[COOKIE].value}
        assert (await c.client.get("/console", cookies=jar)).status == 200
        r = await c.client.post("/console/logout", cookies=jar, allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/console/login"
        assert r.cookies[COOKIE].value == ""  # the browser drops it
        assert (await c.client.get("/console", cookies=jar)).status == 401  # and the server forgot it
    clock = [100.0]
    async with console(tmp_path / "short", fixture_repo, ttl_s=60, clock=clock) as c:
        jar = {COOKIE: (await c.login(AUDITOR)).cookies[COOKIE].value}
        clock[0] += 59
        assert (await c.client.get("/console", cookies=jar)).status == 200
        clock[0] += 1  # the session's time is up
        assert (await c.client.get("/console", cookies=jar)).status == 401


async def test_a_form_posted_from_another_site_is_refused(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with console(tmp_path, fixture_repo) as c:
        r = await c.client.post(
            "/console/login",
            data={"token": AUDITOR},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
        )
        assert r.status == 403 and COOKIE not in r.cookies


def test_the_console_has_no_write_action() -> None:
    console_routes = [r for r in routes() if r.path.startswith("/console")]
    writes = {(r.method, r.path) for r in console_routes if r.method != "GET"}
    assert writes == {("POST", "/console/login"), ("POST", "/console/logout")}
    for r in console_routes:
        assert r.roles is None or r.roles == frozenset({"auditor"}), r.path


async def test_attacker_chosen_paths_and_argv_show_as_text(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with console(tmp_path, fixture_repo) as c:
        auth = {"Authorization": f"Bearer {AUDITOR}"}
        for path in (f"/console/jobs/{c.job_id}", "/console/audit"):
            r = await c.client.get(path, headers=auth)
            html = await r.text()
            assert r.status == 200
            assert "<script>" not in html and "<img" not in html
            assert "&lt;script&gt;alert(&#39;path&#39;)&lt;/script&gt;.py" in html
            assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
            assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        # a filter echoes the attacker's string back escaped, and finds the record
        r = await c.client.get("/console/audit", params={"path": EVIL_PATH}, headers=auth)
        html = await r.text()
        assert "<script>" not in html and html.count('class="records"') == 1 and "write_file" in html


async def test_a_tampered_record_is_highlighted_and_linked(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with console(tmp_path, fixture_repo) as c:
        auth = {"Authorization": f"Bearer {AUDITOR}"}
        html = await (await c.client.get("/console/audit", headers=auth)).text()
        assert "Chain verified" in html and 'class="bad' not in html
        with sqlite3.connect(c.db) as db:
            seq = db.execute("SELECT seq FROM audit WHERE action = 'tool.write_file'").fetchone()[0]
            db.execute("UPDATE audit SET exit_code = 99 WHERE seq = ?", (seq,))
        for path in ("/console/audit", f"/console/jobs/{c.job_id}"):
            html = await (await c.client.get(path, headers=auth)).text()
            assert "Chain BROKEN" in html
            assert f'<tr id="seq-{seq}" class="bad' in html
            assert f'href="/console/audit?after={seq - 1}#seq-{seq}"' in html


async def test_an_ended_jobs_diff_says_not_kept(tmp_path: Path, fixture_repo: FixtureRepo) -> None:
    async with console(tmp_path, fixture_repo) as c:
        auth = {"Authorization": f"Bearer {AUDITOR}"}
        await c.client.app[JOBS].delete(c.job_id, BOT)
        r = await c.client.get(f"/console/jobs/{c.job_id}/diff", headers=auth)
        assert r.status == 200 and "not kept" in await r.text()
        r = await c.client.get("/console/jobs/no-such-job", headers=auth)
        assert r.status == 404 and r.content_type == "text/html"
