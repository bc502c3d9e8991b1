"""The MCP tool table is derived, not hand-kept: every exposed registry tool is an MCP tool with
its request model's schema and its description; every MCP tool mirrors a REST route and takes
that route's roles; what would drift without a test fails here."""

from __future__ import annotations

from typing import Any

import pytest

from service.app import routes
from service.mcp.server import McpEndpoint
from service.mcp.tools import JOB_ID, mcp_tools
from service.models import JobListQuery
from service.tools.registry import EXPOSED, route_path


@pytest.fixture(scope="module")
def listed() -> dict[str, Any]:
    endpoint = McpEndpoint(routes(), 1 << 20)
    return {name: bound for name, bound in endpoint._tools.items()}


def test_every_exposed_tool_is_an_mcp_tool_with_its_models_schema_and_description(
    listed: dict[str, Any],
) -> None:
    assert EXPOSED, "the registry exposes tools"
    for tool in EXPOSED:
        assert tool.exposure is not None
        assert tool.name in listed, f"exposed tool {tool.name} is not an MCP tool"
        mcp_tool = listed[tool.name].listed
        model_schema = tool.exposure.request.model_json_schema(by_alias=True)
        props = mcp_tool.input_schema["properties"]
        assert set(props) == {JOB_ID, *model_schema.get("properties", {})}
        assert props[JOB_ID]["type"] == "string"
        assert mcp_tool.input_schema["required"][0] == JOB_ID
        assert set(mcp_tool.input_schema["required"]) == {JOB_ID, *model_schema.get("required", [])}
        assert mcp_tool.description == tool.exposure.description
        assert listed[tool.name].route.path == route_path(tool)


def test_the_brief_s_tools_are_all_there(listed: dict[str, Any]) -> None:
    wanted = {"create_job", "list_jobs", "get_job", "delete_job", "lint", "test", "diff", "commit", "checks"}
    assert wanted <= set(listed)


def test_each_tool_takes_its_routes_roles(listed: dict[str, Any]) -> None:
    by_key = {(r.method, r.path): r for r in routes()}
    for bound in listed.values():
        route = by_key[(bound.tool.method, bound.tool.path)]
        assert (bound.route.path, bound.route.roles) == (route.path, route.roles)
    auditor = {name for name, b in listed.items() if b.route.allows("auditor")}
    bot = {name for name, b in listed.items() if b.route.allows("bot")}
    assert auditor == {"list_jobs", "get_job", "diff"}  # read-only, as on REST
    assert bot == set(listed)  # every MCP tool is a bot's (no logs or audit tools)
    assert all(b.route.allows("admin") for b in listed.values())


def test_input_schemas_are_plain_objects_an_agent_api_accepts(listed: dict[str, Any]) -> None:
    for name, bound in listed.items():
        schema = bound.listed.input_schema
        assert schema["type"] == "object", name
        assert schema["additionalProperties"] is False, name
        for key in ("oneOf", "anyOf", "allOf"):
            assert key not in schema, f"{name}: top-level {key}"
        assert (JOB_ID in schema["properties"]) == ("{id}" in bound.tool.path), name
        assert bound.listed.output_schema is not None and bound.listed.output_schema["type"] == "object"


def test_create_job_says_what_its_dropped_one_of_checked(listed: dict[str, Any]) -> None:
    create = listed["create_job"].listed
    assert {"repo", "clone_url", "ref", "limits", "labels"} <= set(create.input_schema["properties"])
    assert "exactly one of `repo`" in create.description


def test_list_jobs_takes_every_query_field_rest_takes(listed: dict[str, Any]) -> None:
    # Both call JobService.page with the JobListQuery: the MCP tool must offer each of its fields
    # (the cursor included), so an agent can page as a REST client does.
    props = set(listed["list_jobs"].listed.input_schema["properties"])
    assert set(JobListQuery.model_fields) <= props
    assert "cursor" in props


def test_tool_names_are_unique_and_mcp_legal() -> None:
    names = [t.name for t in mcp_tools()]
    assert len(names) == len(set(names))
    for name in names:
        assert name.replace("_", "").isalnum() and len(name) <= 64, name


def test_the_transport_reads_each_tools_input_schema_from_the_listed_table() -> None:
    # The transport validates a call's Mcp-Param-* headers against the tool's input schema; the
    # server answers from its own table (the same schema tools/list shows), never by re-listing.
    endpoint = McpEndpoint(routes(), 1 << 20)
    lookup = endpoint.server.get_tool_input_schema
    assert lookup is not None
    for name, bound in endpoint._tools.items():
        assert lookup(name) == bound.listed.input_schema, name
    assert lookup("no_such_tool") is None
