"""dockyard over MCP, driven by the official `mcp` client against the real service and engine:
streamable HTTP at /mcp (both protocol eras the SDK speaks) and `dockyard mcp --stdio` spawned as
a local client would. What an MCP user notices: the tools and their schemas, a job from clone to
delete, errors as tool errors with the contract's codes, the same roles and tenants as REST, the
same audit records, a clear 401, and a stdio bridge that says plainly what is wrong."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types as types
import pytest
import requests
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from service.models import ReadFileRequest
from service.tools.registry import EXPOSED
from tests.conftest import REPO_ROOT, Api, FixtureRepo, JobFactory, Service

pytestmark = pytest.mark.docker

JOB_TOOLS = {"create_job", "list_jobs", "get_job", "delete_job", "lint", "test", "diff", "commit", "checks"}


@asynccontextmanager
async def mcp_client(service: Service, token: str, mode: str = "auto") -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
        async with Client(streamable_http_client(service.url + "/mcp", http_client=http), mode=mode) as c:
            yield c


def ok(result: types.CallToolResult) -> dict[str, Any]:
    text = (
        result.content[0].text if result.content and isinstance(result.content[0], types.TextContent) else ""
    )
    assert not result.is_error, f"tool error: {text[:1000]}"
    assert isinstance(result.structured_content, dict)
    assert json.loads(text) == result.structured_content  # the text rendering is the same answer
    return result.structured_content


def tool_error(result: types.CallToolResult, code: str) -> dict[str, Any]:
    assert result.is_error, f"expected a tool error {code}, got {result.structured_content!r:.500}"
    assert isinstance(result.structured_content, dict)
    err = result.structured_content["error"]
    assert err["code"] == code, err
    assert err["message"].strip()
    assert isinstance(err["details"], dict)
    text = result.content[0]
    assert isinstance(text, types.TextContent) and text.text.startswith(f"{code}: ")
    return err  # type: ignore[no-any-return]


def audit_of(auditor_api: Api, job_id: str) -> list[dict[str, Any]]:
    r = auditor_api.get("/v1/audit", params={"job_id": job_id, "limit": 1000})
    assert r.status_code == 200, r.text
    return r.json()["records"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28 per-request POSTs; the handshake era
async def test_list_tools_shows_jobs_and_every_job_tool_with_their_schemas(
    service: Service, mode: str
) -> None:
    async with mcp_client(service, service.tokens["bot"], mode) as c:
        listed = {t.name: t for t in (await c.list_tools()).tools}
        assert c.server_info is not None and c.server_info.name == "dockyard"
    assert JOB_TOOLS | {t.name for t in EXPOSED} <= set(listed)
    read = listed["read_file"]
    assert set(read.input_schema["properties"]) == {
        "job_id",
        *ReadFileRequest.model_json_schema()["properties"],
    }
    assert "job_id" in read.input_schema["required"] and "path" in read.input_schema["required"]
    assert read.output_schema is not None and "content" in read.output_schema["properties"]
    assert read.annotations is not None and read.annotations.read_only_hint is True
    assert (
        listed["write_file"].annotations is not None
        and listed["write_file"].annotations.read_only_hint is False
    )


async def test_a_job_from_clone_to_delete_over_mcp_is_audited_like_rest(
    service: Service, fixture_repo: FixtureRepo, api: Api, auditor_api: Api, make_job: JobFactory
) -> None:
    async with mcp_client(service, service.tokens["bot"]) as c:
        job = ok(
            await c.call_tool(
                "create_job", {"clone_url": fixture_repo.url, "ref": "main", "language": "generic"}
            )
        )
        make_job.ids.append(job["id"])  # deleted at the end of the module whatever happens
        assert job["status"] == "ready" and job["tenant"] == "team-a" and job["base_sha"] == fixture_repo.sha
        jid = job["id"]

        read = ok(await c.call_tool("read_file", {"job_id": jid, "path": "README.md"}))
        assert read["content"] == fixture_repo.text("README.md")
        wrote = ok(
            await c.call_tool("write_file", {"job_id": jid, "path": "src/new.py", "content": "x = 1\n"})
        )
        assert wrote["created"] is True and wrote["mode"] == "100644"
        edit = {"job_id": jid, "path": "README.md", "old": "hello dockyard", "new": "hello mcp"}
        assert ok(await c.call_tool("replace_in_file", edit))["replacements"] == 1
        listing = ok(await c.call_tool("list_directory", {"job_id": jid, "path": "src"}))
        assert "src/new.py" in {e["path"] for e in listing["entries"]}

        diff = ok(await c.call_tool("diff", {"job_id": jid}))
        assert {f["path"]: f["status"] for f in diff["files"]} == {
            "README.md": "modified",
            "src/new.py": "added",
        }
        assert "+hello mcp" in diff["patch"] and "+x = 1" in diff["patch"]
        # the same workspace through REST: MCP and REST are one service
        assert api.get(f"/v1/jobs/{jid}/diff").json()["patch"] == diff["patch"]
        assert api.read(jid, "README.md")["content"].startswith("# fixture\n\nhello mcp\n")

        seen = ok(await c.call_tool("list_jobs", {"status": ["ready"], "limit": 1000}))
        assert jid in {j["id"] for j in seen["jobs"]}
        deleted = ok(await c.call_tool("delete_job", {"job_id": jid}))
        assert deleted["status"] == "destroyed"
    assert api.job(jid)["status"] == "destroyed"

    records = audit_of(auditor_api, jid)
    actions = [r["action"] for r in records]
    for action in (
        "job.create",
        "tool.read_file",
        "tool.write_file",
        "tool.replace_in_file",
        "tool.list_directory",
        "diff",
        "job.delete",
    ):
        assert action in actions, (action, actions)
    # the MCP calls' records name the same actor and tenant as the REST call's record
    rest_read = [r for r in records if r["action"] == "tool.read_file"][-1]
    assert rest_read["actor"].startswith("bot-") and rest_read["tenant"] == "team-a"
    for r in records:
        if r["action"] in ("job.create", "tool.write_file", "tool.replace_in_file", "job.delete"):
            assert (r["actor"], r["role"], r["tenant"]) == (rest_read["actor"], "bot", "team-a"), r


async def test_errors_are_tool_errors_with_the_contract_code_and_the_session_goes_on(
    service: Service, job: dict[str, Any]
) -> None:
    jid = job["id"]
    async with mcp_client(service, service.tokens["bot"]) as c:
        err = tool_error(
            await c.call_tool("read_file", {"job_id": jid, "path": "nope.txt"}), "file_not_found"
        )
        assert "nope.txt" in err["message"]
        tool_error(
            await c.call_tool("read_file", {"job_id": jid, "path": "../etc/passwd"}), "path_outside_workspace"
        )
        tool_error(await c.call_tool("read_file", {"job_id": jid, "path": "bin/blob.bin"}), "binary_file")
        bad = tool_error(await c.call_tool("read_file", {"job_id": jid, "path": 5}), "invalid_request")
        assert bad["details"]["errors"][0]["loc"] == ["path"]
        tool_error(await c.call_tool("read_file", {"path": "README.md"}), "invalid_request")  # no job_id
        tool_error(await c.call_tool("get_job", {"job_id": jid, "extra": 1}), "invalid_request")
        tool_error(await c.call_tool("list_jobs", {"limit": 0}), "invalid_request")
        tool_error(await c.call_tool("no_such_tool", {}), "invalid_request")
        tool_error(await c.call_tool("get_job", {"job_id": "job_" + "0" * 16}), "job_not_found")
        edit = {"job_id": jid, "path": "README.md", "old": "not in the file", "new": "x"}
        tool_error(await c.call_tool("replace_in_file", edit), "edit_mismatch")
        # still the same session, still working
        assert ok(await c.call_tool("get_job", {"job_id": jid}))["status"] == "ready"


async def test_a_bot_never_reaches_another_tenants_job(service: Service, job: dict[str, Any]) -> None:
    jid = job["id"]  # team-a's
    async with mcp_client(service, service.tokens["bot_other"]) as c:
        for name, args in (
            ("get_job", {}),
            ("read_file", {"path": "README.md"}),
            ("write_file", {"path": "README.md", "content": "owned\n"}),
            ("diff", {}),
            ("delete_job", {}),
        ):
            tool_error(await c.call_tool(name, {"job_id": jid, **args}), "job_not_found")
        listed = ok(await c.call_tool("list_jobs", {"limit": 1000}))
        assert jid not in {j["id"] for j in listed["jobs"]}
    async with mcp_client(service, service.tokens["bot_same"]) as c:  # the same tenant's other token
        assert ok(await c.call_tool("get_job", {"job_id": jid}))["status"] == "ready"


async def test_an_auditor_reads_over_mcp_and_cannot_write(
    service: Service, api: Api, job: dict[str, Any]
) -> None:
    jid = job["id"]
    before = api.read(jid, "README.md")["content"]
    async with mcp_client(service, service.tokens["auditor"]) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert names == {"list_jobs", "get_job", "diff"}  # as its REST role allows
        assert ok(await c.call_tool("get_job", {"job_id": jid}))["id"] == jid
        assert "files" in ok(await c.call_tool("diff", {"job_id": jid}))
        err = tool_error(
            await c.call_tool("write_file", {"job_id": jid, "path": "README.md", "content": "x"}), "forbidden"
        )
        assert err["details"]["role"] == "auditor"
        tool_error(await c.call_tool("create_job", {"clone_url": "file:///x", "ref": "main"}), "forbidden")
        tool_error(await c.call_tool("delete_job", {"job_id": jid}), "forbidden")
    assert api.read(jid, "README.md")["content"] == before
    assert api.job(jid)["status"] == "ready"


def test_mcp_needs_a_known_token(service: Service) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    for auth in ({}, {"Authorization": "Bearer not-a-token-of-this-service"}):
        r = requests.post(service.url + "/mcp", json=init, headers={**headers, **auth}, timeout=30)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "unauthorized"
    # with a token: the SDK's own answer, streamed back as server-sent events
    r = requests.post(
        service.url + "/mcp",
        json=init,
        timeout=30,
        headers={**headers, "Authorization": f"Bearer {service.tokens['bot']}"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert r.headers.get("X-Request-Id")
    data = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
    assert data and data[0]["result"]["serverInfo"]["name"] == "dockyard"


def stdio_params(service: Service, token: str, url: str | None = None) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "service", "mcp", "--stdio"],
        env={"DOCKYARD_API_URL": url or service.url, "DOCKYARD_API_TOKEN": token},
        cwd=str(REPO_ROOT),
    )


async def test_the_stdio_bridge_lists_and_calls_the_services_tools(
    service: Service, job: dict[str, Any], fixture_repo: FixtureRepo
) -> None:
    async with Client(stdio_params(service, service.tokens["bot"])) as c:
        names = {t.name for t in (await c.list_tools()).tools}
        assert JOB_TOOLS | {t.name for t in EXPOSED} <= names
        read = ok(await c.call_tool("read_file", {"job_id": job["id"], "path": "src/app.py"}))
        assert read["content"] == fixture_repo.text("src/app.py")
        tool_error(await c.call_tool("read_file", {"job_id": job["id"], "path": "nope"}), "file_not_found")
    async with Client(stdio_params(service, service.tokens["auditor"])) as c:  # the service decides
        assert {t.name for t in (await c.list_tools()).tools} == {"list_jobs", "get_job", "diff"}


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("bad token", "refused the token (DOCKYARD_API_TOKEN): unknown token"),
        ("unreachable", "cannot reach dockyard at http://127.0.0.1:9 (DOCKYARD_API_URL)"),
        ("no token", "DOCKYARD_API_TOKEN is not set"),
    ],
)
def test_the_stdio_bridge_says_plainly_what_is_wrong(service: Service, case: str, said: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "DOCKYARD_API_URL": service.url, "DOCKYARD_API_TOKEN": "x" * 20}
    if case == "unreachable":
        env["DOCKYARD_API_URL"] = "http://127.0.0.1:9"
    if case == "no token":
        del env["DOCKYARD_API_TOKEN"]
    p = subprocess.run(
        [sys.executable, "-m", "service", "mcp", "--stdio"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert said in p.stderr, p.stderr
    assert "Traceback" not in p.stderr and p.stdout == ""


async def test_sigterm_stays_prompt_after_mcp_traffic(tmp_path: Any, fixture_repo: FixtureRepo) -> None:
    svc = Service(tmp_path / "state", tmp_path)
    svc.start()
    try:
        async with mcp_client(svc, svc.tokens["bot"]) as c:
            assert (await c.list_tools()).tools
            started = time.monotonic()
            assert svc.proc is not None
            svc.proc.terminate()  # while the MCP client is still connected
            code = svc.proc.wait(timeout=30)
        elapsed = time.monotonic() - started
        assert code == 0 or code == -15, code
        assert elapsed < 10, f"SIGTERM took {elapsed:.1f} s"
    finally:
        svc.discard()
