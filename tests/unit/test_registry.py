"""One declaration per tool: routes, OpenAPI, the agents' schemas and the helper ops all come from
the registry, and nothing else declares a tool."""

from __future__ import annotations

from service.api.routing import openapi
from service.app import routes
from service.tools import ops
from service.tools.registry import EXPOSED, TOOLS, agent_tools, route_path


def test_every_exposed_tool_is_exactly_one_route_with_its_models() -> None:
    table = routes()
    tool_routes = {r.path: r for r in table if "/tools/" in r.path}
    assert set(tool_routes) == {route_path(t) for t in EXPOSED}  # no tool route outside the registry
    for t in EXPOSED:
        assert t.exposure is not None
        r = tool_routes[route_path(t)]
        assert (r.method, r.body, r.answer, r.handler.__name__) == (
            "POST",
            t.exposure.request,
            t.exposure.result,
            t.name,
        )


def test_openapi_documents_every_tool_route() -> None:
    doc = openapi(routes(), title="t", version="0")
    for t in EXPOSED:
        assert t.exposure is not None
        op = doc["paths"][route_path(t)]["post"]
        assert op["summary"] == t.exposure.summary
        schema_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert schema_ref.endswith("/" + t.exposure.request.__name__)


def test_agent_tools_are_the_request_models() -> None:
    tools = {t["name"]: t for t in agent_tools()}
    assert list(tools) == [t.name for t in EXPOSED if t.exposure is not None and t.exposure.agent_tool]
    move = tools["move_file"]["input_schema"]
    assert set(move["properties"]) == {"from", "to", "overwrite"} and move["required"] == ["from", "to"]
    read = tools["read_file"]["input_schema"]
    assert set(read["properties"]) == {"path", "start_line", "end_line"}  # agents read numbered
    assert set(tools["write_file"]["input_schema"]["properties"]) == {"path", "content", "executable"}


def test_every_tool_calls_a_declared_helper_op_and_every_op_is_used() -> None:
    from service.tools.call import Caps
    from service.tools.diff import BlobsQuery, DiffQuery

    caps = Caps(read=1, write=1 << 20, output=1 << 20)
    samples = {
        "read_file": {"path": "a"},
        "write_file": {"path": "a", "content": "x"},
        "replace_in_file": {"path": "a", "old": "x", "new": "y"},
        "delete_file": {"path": "a"},
        "move_file": {"from": "a", "to": "b"},
        "list_directory": {},
        "search": {"pattern": "x"},
    }
    used = set()
    for t in TOOLS:
        if t.exposure is not None:
            req = t.exposure.request.model_validate(samples[t.name])
        else:
            req = DiffQuery("f" * 40) if t.name == "diff" else BlobsQuery(("a" * 40,))
        call = t.call(req, caps)
        args_model, _ = ops.OPS[call.op]
        args_model.model_validate(call.args)  # the arguments fit the op's declared schema
        used.add(call.op)
    assert used | {"note"} == set(ops.OPS)  # note: the service's line for a plain exec


def test_bot_facing_openapi_extension_is_the_registry() -> None:
    from service.app import build_app
    from service.settings import Settings

    app = build_app(Settings(api_tokens="t" * 16 + ":bot"))  # type: ignore[call-arg]
    assert app["dockyard.openapi"]["x-agent-tools"] == agent_tools()


def test_the_editor_tool_is_a_route_and_an_mcp_tool_but_not_an_agent_tool() -> None:
    from service.models import EditorRequest, EditorResult
    from service.sandbox.docker.engine import WORKSPACE as MOUNTED
    from service.tools import editor
    from service.tools.registry import COMPOSITES
    from service.tools.registry import STR_REPLACE_BASED_EDIT_TOOL as EDIT

    assert EDIT in EXPOSED and EDIT in COMPOSITES and EDIT not in TOOLS
    assert (EDIT.exposure.request, EDIT.exposure.result) == (EditorRequest, EditorResult)
    assert EDIT.name not in {t["name"] for t in agent_tools()}  # Claude knows it by its type
    op = openapi(routes(), title="t", version="0")["paths"][route_path(EDIT)]["post"]
    assert op["summary"] == EDIT.exposure.summary
    schema = EditorRequest.model_json_schema()
    assert schema["properties"]["command"]["enum"] == ["view", "create", "str_replace", "insert"]
    assert editor.WORKSPACE == MOUNTED  # the path Claude is told is where the box mounts the tree


def test_insert_arithmetic() -> None:
    from service.tools.editor import inserted, lines_of

    assert lines_of("a\nb") == ["a\n", "b"] and lines_of("") == [] and lines_of("a\r\n") == ["a\r\n"]
    assert inserted("a\nb\n", 0, "z") == ("z\na\nb\n", 1, 1)
    assert inserted("a\nb\n", 1, "x\ny\n") == ("a\nx\ny\nb\n", 2, 3)
    assert inserted("a\nb", 2, "c") == ("a\nb\nc\n", 3, 3)  # after a last line without an ending
    assert inserted("a\r\nb\r\n", 2, "c") == ("a\r\nb\r\nc\r\n", 3, 3)
    assert inserted("", 0, "") == ("\n", 1, 1)  # an empty insert is one empty line
