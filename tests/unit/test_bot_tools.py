"""The registry drift test, bot side: the tools the bot offers its model are the service's own, as
the real application serves them in `/openapi.json` (`x-agent-tools`), every one has a handler,
and the bot changes nothing of them but the policy notes appended to their descriptions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.agent import POLICY, READ_LINES_DEFAULT, ToolBox, ToolDrift
from bot.client import DockyardClient
from bot.models import AgentTool
from service.api.health import openapi_json
from service.app import build_app
from service.settings import Settings
from service.tools.registry import EXPOSED, agent_tools

# the real handler reads the document under the service's own (string) key
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")


@pytest.fixture
async def service_url(tmp_path: Path) -> AsyncIterator[str]:
    """The real application's OpenAPI document behind its real handler (no engine needed)."""
    real = build_app(Settings(api_tokens="t" * 20 + ":bot", state_dir=tmp_path / "state"))
    app = web.Application()
    app["dockyard.openapi"] = real["dockyard.openapi"]
    app.router.add_get("/openapi.json", openapi_json)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def served_tools(url: str) -> list[AgentTool]:
    async with DockyardClient(url, "t" * 20) as c:
        return await c.agent_tools()


async def test_every_service_tool_has_a_handler_and_keeps_its_schema(service_url: str) -> None:
    tools = await served_tools(service_url)
    assert [t.name for t in tools] == [t.name for t in EXPOSED], "every route's tool is served"
    assert [t.model_dump() for t in tools] == agent_tools()
    box = ToolBox(DockyardClient(service_url, "x"), "job_1", 7, tools, strict=True)  # raises on drift
    assert box.unmapped == []
    offered = {t["name"]: t for t in box.model_tools}
    assert list(offered) == [t.name for t in tools]
    for tool in tools:
        mine = offered[tool.name]
        assert mine["input_schema"] == tool.input_schema, f"{tool.name}: the bot must not edit the schema"
        assert mine.get("description", "").startswith(tool.description)
    assert set(POLICY) <= set(offered), "a policy note for a tool the service does not offer"


async def test_the_policy_notes_are_appended_once(service_url: str) -> None:
    box = ToolBox(DockyardClient(service_url, "x"), "job_1", 7, await served_tools(service_url), strict=True)
    desc = {t["name"]: t.get("description", "") for t in box.model_tools}
    assert f"at most {READ_LINES_DEFAULT} lines" in desc["read_file"]
    assert "at most 7 distinct files" in desc["read_file"] and "{max_files}" not in desc["read_file"]
    assert "Change existing files with replace_in_file" in desc["write_file"]
    assert "the default way to change code" in desc["replace_in_file"]
    # read_file's agent schema leaves `numbered` out: the bot always reads numbered lines
    read = next(t for t in box.model_tools if t["name"] == "read_file")
    assert set(dict(read["input_schema"])["properties"]) == {"path", "start_line", "end_line"}


async def test_a_tool_without_a_handler_fails_a_strict_toolbox_and_is_not_offered_otherwise() -> None:
    tools = [
        AgentTool(name="read_file", description="Read.", input_schema={"type": "object"}),
        AgentTool(name="chmod_file", description="New.", input_schema={"type": "object"}),
    ]
    client = DockyardClient("http://127.0.0.1:9", "x")
    with pytest.raises(ToolDrift, match="chmod_file"):
        ToolBox(client, "job_1", 5, tools, strict=True)
    box = ToolBox(client, "job_1", 5, tools)
    assert box.unmapped == ["chmod_file"] and [t["name"] for t in box.model_tools] == ["read_file"]
    text, is_error = await box.run("chmod_file", {"path": "a"})
    assert is_error and "unknown tool 'chmod_file'; the tools are: read_file" in text
    # a tool the bot handles but the service does not offer is not callable either
    text, is_error = await box.run("delete_file", {"path": "a"})
    assert is_error and "unknown tool 'delete_file'" in text
