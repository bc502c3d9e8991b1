"""The registry drift test, bot side: the tools the bot offers its model are the service's own, as
the real application serves them in `/openapi.json` (`x-agent-tools`), every one has a handler,
and the bot changes nothing of them but the policy notes appended to their descriptions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from dockyard_client.models import AgentTool

from bot.agent import EDITOR_TOOL, POLICY, SUPERSEDED, ToolBox, ToolDrift, editor_path, normalize
from bot.client import DockyardPort
from service.api.health import openapi_json
from service.app import build_app
from service.settings import Settings
from service.tools.editor import Refused, repo_path
from service.tools.registry import EXPOSED, STR_REPLACE_BASED_EDIT_TOOL, agent_tools

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
    async with DockyardPort.connect(url, "t" * 20) as c:
        return await c.agent_tools()


async def test_every_service_tool_has_a_handler_and_keeps_its_schema(service_url: str) -> None:
    tools = await served_tools(service_url)
    agent_facing = [t.name for t in EXPOSED if t.exposure is not None and t.exposure.agent_tool]
    assert [t.name for t in tools] == agent_facing, "every agent-facing route's tool is served"
    assert [t.model_dump() for t in tools] == agent_tools()
    box = ToolBox(DockyardPort.connect(service_url, "x"), "job_1", 7, tools, strict=True)  # raises on drift
    assert box.unmapped == []
    # Claude's editor first (its own typed tool, the service's route of that name), then every
    # service tool it does not stand in for, schemas untouched
    assert box.model_tools[0] == EDITOR_TOOL and EDITOR_TOOL["name"] == STR_REPLACE_BASED_EDIT_TOOL.name
    assert set(SUPERSEDED) <= {t.name for t in tools}, "the editor stands in for tools the service has"
    offered = {str(t["name"]): t for t in box.model_tools[1:]}
    assert list(offered) == [t.name for t in tools if t.name not in SUPERSEDED]
    for tool in tools:
        if tool.name in SUPERSEDED:
            continue
        mine = cast(dict[str, Any], offered[tool.name])
        assert mine["input_schema"] == tool.input_schema, f"{tool.name}: the bot must not edit the schema"
        assert mine.get("description", "").startswith(tool.description)
    assert set(POLICY) <= set(offered), "a policy note for a tool the service does not offer"


async def test_the_policy_notes_are_appended_once(service_url: str) -> None:
    box = ToolBox(
        DockyardPort.connect(service_url, "x"), "job_1", 7, await served_tools(service_url), strict=True
    )
    desc = {str(t["name"]): cast(dict[str, Any], t).get("description", "") for t in box.model_tools}
    assert desc["delete_file"].count("Only when the fix needs the file gone") == 1
    assert "At most 80 matches" in desc["search"]
    assert not set(SUPERSEDED) & set(desc), "read/write/replace/list go through the editor"


def test_the_bot_maps_editor_paths_as_the_service_does() -> None:
    for path in [
        "/workspace",
        "/workspace/",
        "/workspace/src/app.py",
        "src/app.py",
        "./src",
        "/repo/x",
        "/etc",
    ]:
        try:
            theirs: str | None = repo_path(path)
        except Refused:
            theirs = None
        mine = editor_path(path)
        assert mine == (None if theirs is None else normalize(theirs)), path


async def test_a_tool_without_a_handler_fails_a_strict_toolbox_and_is_not_offered_otherwise() -> None:
    tools = [
        AgentTool(name="search", description="Search.", input_schema={"type": "object"}),
        AgentTool(name="read_file", description="Read.", input_schema={"type": "object"}),
        AgentTool(name="chmod_file", description="New.", input_schema={"type": "object"}),
    ]
    client = DockyardPort.connect("http://127.0.0.1:9", "x")
    with pytest.raises(ToolDrift, match="chmod_file"):
        ToolBox(client, "job_1", 5, tools, strict=True)
    box = ToolBox(client, "job_1", 5, tools)
    assert box.unmapped == ["chmod_file"]  # read_file is not unmapped: the editor stands in for it
    assert box.offered == [EDITOR_TOOL["name"], "search"]
    text, is_error = await box.run("chmod_file", {"path": "a"})
    assert is_error and f"unknown tool 'chmod_file'; the tools are: {EDITOR_TOOL['name']}, search" in text
    # a tool the bot handles but the service does not offer is not callable either
    text, is_error = await box.run("delete_file", {"path": "a"})
    assert is_error and "unknown tool 'delete_file'" in text
