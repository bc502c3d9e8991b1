"""The bot's port onto the service (bot/client.py over the client SDK) behaves as the bot expects: only
safe calls are repeated, a busy service (429) is waited for under one Idempotency-Key, contract errors
arrive as the SDK's typed exceptions with their details, and every answer the bot reads is the SDK's
model of it (no copies of the wire models in bot/). The SDK's own error tree and models are tested in
tests/unit/test_sdk.py and, against the live /openapi.json, tests/integration/test_sdk_drift.py."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from dockyard_client import RetryPolicy
from dockyard_client import models as sdk_models
from dockyard_client.errors import (
    ConnectionError,
    FileExists,
    GitHubError,
    ResponseValidationError,
    ServiceUnavailable,
    TooManyJobs,
)
from pydantic import BaseModel

import bot
from bot.agent import ToolBox
from bot.client import DockyardPort
from service.tools.registry import agent_tools as service_agent_tools


def err(
    status: int,
    code: str,
    message: str = "m",
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return web.json_response(body, status=status, headers=headers)


class Server:
    """A tiny stand-in service: each route answers from a list of canned responses."""

    def __init__(self) -> None:
        self.answers: dict[str, list[Callable[[web.Request], web.Response]]] = {}
        self.hits: dict[str, int] = {}
        self.raw: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {}
        self.bodies: list[Any] = []
        self.keys: list[str | None] = []  # the Idempotency-Key of each request
        self.url = ""

    def on(self, key: str, *answers: Callable[[web.Request], web.Response]) -> None:
        self.answers[key] = list(answers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        key = f"{request.method} {request.path}"
        if key in self.raw:
            return await self.raw[key](request)
        self.hits[key] = self.hits.get(key, 0) + 1
        self.keys.append(request.headers.get("Idempotency-Key"))
        if request.can_read_body:
            self.bodies.append(await request.json())
        assert request.headers["Authorization"] == "Bearer tok-123"
        queue = self.answers.get(key) or []
        if not queue:
            return err(404, "not_found", f"no canned answer for {key}")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return answer(request)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", srv.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    srv.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield srv
    await runner.cleanup()


def client(srv: Server) -> DockyardPort:
    """The port as the bot makes it, with quick retries: 2 repeats, 429 waits up to 1 s in all."""
    return DockyardPort.connect(
        srv.url, "tok-123", retry=RetryPolicy(max_retries=2, base_delay_s=0.01, busy_wait_s=1)
    )


JOB: dict[str, Any] = {
    "id": "job_1",
    "status": "ready",
    "repo": "octo/a",
    "ref": "main",
    "base_sha": "a" * 40,
    "language": "python",
    "image": "dockyard/python:x",
    "container_id": "c",
    "limits": {
        "memory_mb": 1024,
        "cpus": 1.0,
        "pids": 256,
        "disk_mb": 2048,
        "tool_timeout_s": 30,
        "lint_timeout_s": 120,
        "output_cap_kb": 1024,
    },
    "labels": {},
    "created_at": "2026-11-01T00:00:00Z",
    "expires_at": "2026-11-01T01:00:00Z",
    "error": None,
    "commits": [],
    "some_future_field": 1,
}


def ok(data: Any, status: int = 200) -> Callable[[web.Request], web.Response]:
    return lambda r: web.json_response(data, status=status)


@pytest.fixture
def job_1(server: Server) -> None:
    """The job the calls below are about (the port fetches its handle once)."""
    server.on("GET /v1/jobs/job_1", ok(JOB))


async def test_create_job_waits_while_the_service_is_busy(server: Server) -> None:
    server.on(
        "POST /v1/jobs",
        lambda r: err(429, "too_many_jobs", "busy", headers={"Retry-After": "0.05"}),
        ok(JOB, 201),
    )
    async with client(server) as c:
        job = await c.create_job(repo="octo/a", ref="main", labels={"bot-run": "x"}, ttl_s=600)
    assert job.id == "job_1" and job.status == "ready" and server.hits["POST /v1/jobs"] == 2
    assert server.bodies[-1] == {"repo": "octo/a", "ref": "main", "ttl_s": 600, "labels": {"bot-run": "x"}}
    first, again = server.keys
    assert first and first == again, "the wait repeats the creation under one Idempotency-Key: one job"


async def test_busy_for_too_long_raises(server: Server) -> None:
    server.on("POST /v1/jobs", lambda r: err(429, "too_many_jobs", "busy", headers={"Retry-After": "0.6"}))
    async with client(server) as c:
        with pytest.raises(TooManyJobs):
            await c.create_job(repo="octo/a")
    assert server.hits["POST /v1/jobs"] == 2  # waited 0.6 s once; a second wait would pass max_wait_s


async def test_reads_retry_on_503_but_edits_never_repeat(server: Server, job_1: None) -> None:
    server.on(
        "POST /v1/jobs/job_1/tools/read_file",
        lambda r: err(503, "docker_unavailable"),
        ok(
            {
                "path": "a.py",
                "content": "     1\tx\n",
                "start_line": 1,
                "end_line": 1,
                "total_lines": 1,
                "size_bytes": 2,
                "truncated": False,
            }
        ),
    )
    editor = "POST /v1/jobs/job_1/tools/str_replace_based_edit_tool"
    viewed = {"content": "1\tx", "is_error": False}
    server.on(editor, lambda r: err(503, "docker_unavailable"), ok(viewed))
    async with client(server) as c:
        read = await c.read_file("job_1", "a.py", numbered=True)
        assert read.content == "     1\tx\n" and server.hits["POST /v1/jobs/job_1/tools/read_file"] == 2
        assert (await c.edit_tool("job_1", {"command": "view", "path": "a.py"})).content == "1\tx"
        assert server.hits[editor] == 2, "a view is a read: repeated"
        server.on(editor, lambda r: err(503, "docker_unavailable"))
        change = {"command": "str_replace", "path": "a.py", "old_str": "x", "new_str": "y"}
        with pytest.raises(ServiceUnavailable):
            await c.edit_tool("job_1", change)
    assert server.hits[editor] == 3, "an edit is never repeated (a replay could apply it twice)"


async def test_githubs_own_refusal_is_not_repeated_but_its_outage_is(server: Server, job_1: None) -> None:
    no_ci = {"status": "no_ci", "sha": "a" * 40, "checks": [], "details": {}}
    server.on(
        "GET /v1/jobs/job_1/checks",
        lambda r: err(502, "github_error", "GitHub answered 502", {"github_status": 502}),
        ok(no_ci),
    )
    server.on(
        "POST /v1/jobs/job_1/commit",
        lambda r: err(502, "github_error", "GitHub answered 422: base", {"github_status": 422}),
    )
    async with client(server) as c:
        assert (await c.checks("job_1")).status == "no_ci"
        with pytest.raises(GitHubError, match="422"):
            await c.commit("job_1", branch="fix", message="m", base_branch="nope")
    assert server.hits["GET /v1/jobs/job_1/checks"] == 2
    assert server.hits["POST /v1/jobs/job_1/commit"] == 1
    assert server.keys[-1], "a commit is sent with an Idempotency-Key"


async def test_a_refusal_carries_its_details_to_the_model(server: Server, job_1: None) -> None:
    details = {"path": "b.py"}
    server.on(
        "POST /v1/jobs/job_1/tools/move_file", lambda r: err(409, "file_exists", "b.py exists", details)
    )
    async with client(server) as c:
        with pytest.raises(FileExists) as info:
            await c.move_file("job_1", "a.py", "b.py")
    assert info.value.details == details and info.value.status == 409
    box = toolbox(server)
    async with box.client:
        text, is_error = await box.run("move_file", {"from": "a.py", "to": "b.py"})
    assert is_error and text == 'error file_exists: b.py exists\ndetails: {"path": "b.py"}'


async def test_unreachable_service_is_a_connection_error() -> None:
    retry = RetryPolicy(max_retries=1, base_delay_s=0.01)
    async with DockyardPort.connect("http://127.0.0.1:9", "tok-123", retry=retry) as c:
        with pytest.raises(ConnectionError, match="cannot reach dockyard"):
            await c.read_file("job_1", "a.py")


async def test_checks_and_list_send_query_parameters(server: Server, job_1: None) -> None:
    seen: list[dict[str, Any]] = []

    def checks(r: web.Request) -> web.Response:
        seen.append(dict(r.query))
        return web.json_response({"status": "no_ci", "sha": "a" * 40, "checks": [], "details": {}})

    def jobs(r: web.Request) -> web.Response:
        seen.append({"label": r.query.getall("label")})
        return web.json_response({"jobs": [JOB]})

    server.on("GET /v1/jobs/job_1/checks", checks)
    server.on("GET /v1/jobs", jobs)
    async with client(server) as c:
        result = await c.checks("job_1", sha="a" * 40, wait_s=2.5)
        listed = await c.list_jobs(labels={"bot-run": "r1"})
    assert result.status == "no_ci" and listed[0].id == "job_1"
    assert seen == [{"sha": "a" * 40, "wait_s": "2.5"}, {"label": ["bot-run:r1"]}]


async def test_delete_is_fine_twice(server: Server) -> None:
    server.on("DELETE /v1/jobs/job_1", lambda r: web.Response(status=204))
    async with client(server) as c:
        await c.delete_job("job_1")
        await c.delete_job("job_1")
    assert server.hits["DELETE /v1/jobs/job_1"] == 2


# --- the new tools over HTTP ---------------------------------------------------------------------------


def read_answer(path: str, content: str) -> dict[str, Any]:
    lines = content.count("\n")
    return {
        "path": path,
        "content": content,
        "start_line": 1,
        "end_line": lines,
        "total_lines": lines,
        "size_bytes": len(content),
        "truncated": False,
    }


def toolbox(srv: Server) -> ToolBox:
    tools = [sdk_models.AgentTool.model_validate(t) for t in service_agent_tools()]
    return ToolBox(client(srv), "job_1", 5, tools, strict=True)


async def test_the_client_sends_the_new_tools_to_their_routes(server: Server, job_1: None) -> None:
    tool = "/v1/jobs/job_1/tools/"
    server.on(
        f"POST {tool}write_file", ok({"path": "a.sh", "bytes_written": 3, "created": True, "mode": "100755"})
    )
    server.on(f"POST {tool}delete_file", ok({"path": "a.sh", "deleted": True}))
    server.on(f"POST {tool}move_file", ok({"from": "a", "to": "b", "mode": "100644", "ignored": True}))
    async with client(server) as c:
        w = await c.write_file("job_1", "a.sh", "x\n", executable=True)
        keep = await c.write_file("job_1", "a.sh", "x\n")
        d = await c.delete_file("job_1", "a.sh")
        m = await c.move_file("job_1", "a", "b", overwrite=True)
    assert (w.mode, w.ignored, keep.created, d.deleted) == ("100755", False, True, True)
    assert (m.from_, m.to, m.ignored) == ("a", "b", True)
    assert server.bodies == [
        {"path": "a.sh", "content": "x\n", "executable": True},
        {"path": "a.sh", "content": "x\n"},  # null (keep the mode) is the service's default
        {"path": "a.sh"},
        {"from": "a", "to": "b", "overwrite": True},
    ]


async def test_delete_and_move_are_not_repeated_after_a_lost_answer(server: Server, job_1: None) -> None:
    server.on("POST /v1/jobs/job_1/tools/delete_file", lambda r: err(503, "docker_unavailable"))
    server.on("POST /v1/jobs/job_1/tools/move_file", lambda r: err(503, "docker_unavailable"))
    async with client(server) as c:
        with pytest.raises(ServiceUnavailable):
            await c.delete_file("job_1", "a")
        with pytest.raises(ServiceUnavailable):
            await c.move_file("job_1", "a", "b")
    assert server.hits["POST /v1/jobs/job_1/tools/delete_file"] == 1
    assert server.hits["POST /v1/jobs/job_1/tools/move_file"] == 1


async def test_the_toolbox_delete_and_move_call_their_routes_and_capture_the_base(
    server: Server, job_1: None
) -> None:
    tool = "/v1/jobs/job_1/tools/"
    reads = {"old.py": "x = 1\n", "gone.py": "y = 2\n"}

    def read(r: web.Request) -> web.Response:
        path = server.bodies[-1]["path"]
        if path in reads:
            return web.json_response(read_answer(path, reads[path]))
        return err(404, "file_not_found", f"{path} does not exist")

    server.on(f"POST {tool}read_file", read)
    server.on(f"POST {tool}delete_file", ok({"path": "gone.py", "deleted": True}))
    server.on(
        f"POST {tool}move_file",
        ok({"from": "old.py", "to": "build/new.py", "mode": "100644", "ignored": True}),
    )
    box = toolbox(server)
    async with box.client:
        deleted, d_err = await box.run("delete_file", {"path": "./gone.py"})
        moved, m_err = await box.run("move_file", {"from": "old.py", "to": "build//new.py"})
    assert not d_err and deleted == "deleted gone.py"
    assert not m_err and moved.startswith("moved old.py to build/new.py (mode 100644)")
    assert ".gitignore excludes build/new.py, so it will NOT be part of the diff" in moved
    sent = [(k, n) for k, n in server.hits.items()]
    assert sent == [
        ("GET /v1/jobs/job_1", 1),  # the job's handle, fetched once
        (f"POST {tool}read_file", 3),
        (f"POST {tool}delete_file", 1),
        (f"POST {tool}move_file", 1),
    ]
    assert {"path": "gone.py"} in server.bodies
    assert {"from": "old.py", "to": "build/new.py", "overwrite": False} in server.bodies
    # the base of every path they touched, to put a round back: content, or None for absent
    assert box.base == {"gone.py": "y = 2\n", "old.py": "x = 1\n", "build/new.py": None}
    assert [(e.name, e.path, e.ok) for e in box.events] == [
        ("delete_file", "gone.py", True),
        ("move_file", "old.py → build/new.py", True),
    ]


async def test_the_editor_input_goes_to_the_service_untouched_and_create_makes_only_new_files(
    server: Server, job_1: None
) -> None:
    tool = "/v1/jobs/job_1/tools/"
    server.on(f"POST {tool}read_file", ok(read_answer("run.sh", "#!/bin/sh\n")))  # the base, captured
    edited = {"content": "The file /workspace/run.sh has been edited.", "is_error": False}
    server.on(f"POST {tool}str_replace_based_edit_tool", ok(edited))
    box = toolbox(server)
    change = {"command": "str_replace", "path": "/workspace/run.sh", "old_str": "sh", "new_str": "bash"}
    async with box.client:
        text, err = await box.run("str_replace_based_edit_tool", change)
        again, again_err = await box.run(
            "str_replace_based_edit_tool", {"command": "create", "path": "run.sh", "file_text": "x"}
        )
        bad, bad_err = await box.run("str_replace_based_edit_tool", {"command": "view"})
    assert not err and text == edited["content"]
    assert again_err and "run.sh already exists: change it with `str_replace`" in again
    assert bad_err and "`path` is required" in bad
    assert [b for b in server.bodies if "command" in b] == [change]  # verbatim, once
    assert box.base == {"run.sh": "#!/bin/sh\n"} and box.files_read == ["run.sh"]
    assert [(e.name, e.path, e.ok) for e in box.events] == [
        ("replace_in_file", "run.sh", True),
        ("write_file", "run.sh", False),
        ("read_file", None, False),
    ]


async def test_agent_tools_come_from_the_openapi_document(server: Server) -> None:
    server.on("GET /openapi.json", ok({"openapi": "3.1.0", "x-agent-tools": service_agent_tools()}))
    async with client(server) as c:
        tools = await c.agent_tools()
    assert [t.name for t in tools] == [t["name"] for t in service_agent_tools()]


async def test_a_service_without_agent_tools_is_a_clear_error(server: Server) -> None:
    server.on("GET /openapi.json", ok({"openapi": "3.1.0", "paths": {}}))
    async with client(server) as c:
        with pytest.raises(ResponseValidationError, match="does not describe its agent tools"):
            await c.agent_tools()


# --- the bot reads the SDK's models, and keeps no copies ---------------------------------------------


def test_every_answer_the_port_gives_is_the_sdks_model() -> None:
    answers = {
        name: typing.get_type_hints(fn)["return"]
        for name, fn in inspect.getmembers(DockyardPort, inspect.iscoroutinefunction)
        if not name.startswith("_") and name != "close"
    }
    assert answers["lint"] is sdk_models.LintResult and answers["create_job"] is sdk_models.Job
    for name, answer in answers.items():
        inner = typing.get_args(answer) or (answer,)
        models = [a for a in inner if isinstance(a, type) and a is not type(None)]
        assert all(m.__module__ == "dockyard_client.models" for m in models), (name, answer)


def test_the_bot_has_no_copy_of_a_wire_model_nor_http_code_in_its_port() -> None:
    wire = {n for n, v in vars(sdk_models).items() if isinstance(v, type) and issubclass(v, BaseModel)}
    copies = []
    for info in pkgutil.iter_modules(bot.__path__, "bot."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == module.__name__ and name in wire:
                copies.append(f"{module.__name__}.{name}")
    assert not copies, f"bot/ declares its own copy of the SDK's wire models: {copies}"
    assert not (Path(bot.__path__[0]) / "models.py").exists()
    source = inspect.getsource(importlib.import_module("bot.client"))
    assert not {"aiohttp", "httpx", "json", "random", "asyncio.sleep"} & set(re.findall(r"[\w.]+", source))
