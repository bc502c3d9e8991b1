"""`/mcp`: the service speaking MCP over streamable HTTP (the official SDK's low-level server).

Mounted on the service's own aiohttp application (no second server or port) through the ASGI
bridge in `service.mcp.asgi`, behind the same middlewares as every route: the bearer token is
checked by the auth middleware, which puts the caller's actor on the request; each MCP message
carries its HTTP request, so a tool call runs as that actor. The session manager is stateless:
every POST stands alone and is authenticated on its own (no session to hijack, nothing kept
between requests, nothing open when the service stops); its task group starts and stops with
the application (`lifecycle`, a cleanup context).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import mcp_types as types
import structlog
from aiohttp import web
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from service import __version__
from service.api.routing import Route, actor, validated
from service.app_keys import JOBS
from service.audit import Actor
from service.errors import FAILURES, DockyardError, Forbidden, InvalidRequest, contract
from service.logging import get_logger
from service.mcp import asgi
from service.mcp.tools import JOB_ID, McpTool, mcp_tools
from service.models import ErrorBody, ErrorResponse

log = get_logger(__name__)

PATH = "/mcp"
ROLES = frozenset({"bot", "auditor"})  # admin is implied; each tool narrows to its route's roles
_REQUEST = "dockyard.request"  # the ASGI scope key carrying the aiohttp request
INSTRUCTIONS = (
    "dockyard runs code-fix agents' tools in a hardened sandbox per job: create_job clones a "
    "repository into a fresh box; the file tools, lint, test and diff work on that job "
    "(pass its id as job_id); delete_job removes the box. Every call is audited."
)


@dataclass(frozen=True)
class _Bound:
    """An MCP tool with the REST route it mirrors, and what `tools/list` says of it."""

    tool: McpTool
    route: Route
    listed: types.Tool


def is_mcp(path: str) -> bool:
    return path == PATH


class McpEndpoint:
    """The MCP server over the service's tools, and the aiohttp route that serves it."""

    def __init__(self, table: list[Route], max_body_bytes: int):
        by_key = {(r.method, r.path): r for r in table}
        self._tools: dict[str, _Bound] = {}
        for tool in mcp_tools():
            route = by_key.get((tool.method, tool.path))
            assert route is not None, f"MCP tool {tool.name} mirrors no route {tool.method} {tool.path}"
            assert tool.name not in self._tools, f"two MCP tools named {tool.name}"
            listed = types.Tool(
                name=tool.name,
                description=tool.description(route.summary),
                input_schema=tool.input_schema(),
                output_schema=tool.output_schema(),
                annotations=types.ToolAnnotations(
                    read_only_hint=tool.read_only,
                    destructive_hint=tool.destructive,
                    open_world_hint=False,
                ),
            )
            self._tools[tool.name] = _Bound(tool, route, listed)
        self._max_body = max_body_bytes
        self.server: Server[Any] = Server(
            "dockyard",
            version=__version__,
            instructions=INSTRUCTIONS,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            # The transport checks a call's Mcp-Param-* headers against its tool's input schema:
            # from this table, not by running tools/list on every call (~4 ms a call otherwise).
            get_tool_input_schema=self._input_schema,
        )
        self._manager: StreamableHTTPSessionManager | None = None

    def routes(self) -> list[Route]:
        """POST /mcp: every MCP message (stateless: no GET stream, no session to DELETE)."""
        return [Route("POST", PATH, self.handle, "MCP over streamable HTTP: jobs and every job tool", ROLES)]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        manager = self._manager
        if manager is None:
            raise web.HTTPServiceUnavailable(reason="the MCP endpoint is not running")
        # the request id the error middleware gave this request (it cannot add it to a streamed answer)
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        headers = {"X-Request-Id": request_id} if isinstance(request_id, str) else {}
        return await asgi.serve(manager.handle_request, request, {_REQUEST: request}, headers)

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """The session manager's task group, run in a task of its own for the app's lifetime."""
        manager = StreamableHTTPSessionManager(
            self.server, stateless=True, max_request_body_size=self._max_body, session_idle_timeout=None
        )
        running = asyncio.Event()
        stop = asyncio.Event()

        async def run() -> None:
            async with manager.run():
                running.set()
                await stop.wait()

        task = asyncio.get_running_loop().create_task(run(), name="dockyard-mcp")
        started = asyncio.ensure_future(running.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            started.cancel()
            task.result()  # raises what stopped it
            raise RuntimeError("the MCP session manager ended at start")
        self._manager = manager
        try:
            yield
        finally:
            self._manager = None
            stop.set()
            try:
                await task
            except asyncio.CancelledError:  # this cleanup was cancelled: stop the manager at once too
                task.cancel()
                raise

    # --- MCP handlers --------------------------------------------------------------------------

    def _input_schema(self, name: str) -> Mapping[str, Any] | None:
        bound = self._tools.get(name)
        return bound.listed.input_schema if bound is not None else None

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        who = actor(_request_of(ctx))
        listed = [b.listed for b in self._tools.values() if b.route.allows(who.role)]
        return types.ListToolsResult(tools=listed)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        request = _request_of(ctx)
        who = actor(request)
        with structlog.contextvars.bound_contextvars(actor=who.name, tenant=who.tenant, mcp_tool=params.name):
            try:
                result = await self._run(request, who, params.name, dict(params.arguments or {}))
            except FAILURES as failure:
                return _error_result(contract(failure))
            except Exception:
                log.exception("mcp_tool_failed", tool=params.name)
                return _error_result(DockyardError("internal error; see the service log", {}))
        text = result.model_dump_json(by_alias=True)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)],
            structured_content=json.loads(text),
            is_error=False,
        )

    async def _run(self, request: web.Request, who: Actor, name: str, args: dict[str, Any]) -> Any:
        bound = self._tools.get(name)
        if bound is None or not bound.route.allows(who.role):
            if bound is None:
                raise InvalidRequest(f"no tool {name!r}", {"tools": sorted(self._tools)})
            allowed = sorted((bound.route.roles or set()) | {"admin"})
            raise Forbidden(
                f"role {who.role!r} may not call {name} ({bound.route.method} {bound.route.path}); "
                f"allowed: {', '.join(allowed)}",
                {"role": who.role, "allowed_roles": allowed},
            )
        tool = bound.tool
        job_id = ""
        if tool.on_job:
            given = args.pop(JOB_ID, None)
            if not isinstance(given, str) or not given:
                raise InvalidRequest(f"{JOB_ID}: the job's id (a string) is required", {})
            job_id = given
            structlog.contextvars.bind_contextvars(job_id=job_id)
            await request.app[JOBS].authorize(job_id, who)  # another tenant's job: job_not_found
        if tool.params is not None:
            req: Any = validated(tool.params, args)
        elif args:
            raise InvalidRequest(f"{name} takes no arguments besides {JOB_ID}: {', '.join(sorted(args))}", {})
        else:
            req = None
        return await tool.run(request.app, job_id, req, who)


def _request_of(ctx: ServerRequestContext[Any]) -> web.Request:
    scope = getattr(ctx.request, "scope", None)
    request = scope.get(_REQUEST) if isinstance(scope, dict) else None
    assert isinstance(request, web.Request), "an MCP message reached dockyard without its HTTP request"
    return request


def _error_result(e: DockyardError) -> types.CallToolResult:
    """A tool error the model reads (isError), with the contract's code, message and details."""
    body = ErrorResponse(error=ErrorBody(code=e.code, message=e.message, details=dict(e.details)))
    text = f"{e.code}: {e.message}"
    if e.details:
        text += "\n" + json.dumps(e.details, default=str)
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=body.model_dump(mode="json"),
        is_error=True,
    )
