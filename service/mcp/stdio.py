"""`dockyard mcp --stdio`: an MCP server on stdin/stdout for local clients (Claude Desktop and
the like) that forwards every tool listing and call to a running dockyard's `/mcp` with the
official MCP client. It needs no Docker and holds no state: the service decides what the token
may see and do, and audits each call as it does any other.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError

from service import __version__
from service.mcp.server import PATH
from service.settings import ClientSettings

# The MCP SDK's own defaults for its HTTP client: a tool call's answer may be a while in coming.
TIMEOUT = httpx2.Timeout(30.0, read=300.0)


class BridgeError(Exception):
    """A failure to tell the user in one line (no traceback): unreachable, token refused."""


async def _preflight(http: httpx2.AsyncClient, base: str) -> None:
    """Reach the service and have it accept the token before speaking MCP, so either failure is
    said plainly (an MCP client reports both as a generic transport error)."""
    try:
        r = await http.get(f"{base}/v1/jobs", params={"limit": 1})
    except httpx2.HTTPError as e:
        raise BridgeError(f"cannot reach dockyard at {base} (DOCKYARD_API_URL): {e}") from None
    if r.status_code == 200:
        return
    try:
        message = str(r.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = r.text[:200] or r.reason_phrase
    if r.status_code == 401:
        raise BridgeError(f"dockyard at {base} refused the token (DOCKYARD_API_TOKEN): {message}")
    raise BridgeError(f"dockyard at {base} answered {r.status_code}: {message}")


@asynccontextmanager
async def upstream(base: str, token: str) -> AsyncIterator[Client]:
    """An MCP client session on the service's `/mcp`, authenticated with `token`."""
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT) as http:
        await _preflight(http, base)
        async with Client(streamable_http_client(base + PATH, http_client=http)) as client:
            yield client


def proxy(client: Client) -> Server[Any]:
    """A server whose tools are the service's, each call forwarded as it came."""

    async def list_tools(
        ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return await client.list_tools(cursor=params.cursor if params is not None else None)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        try:
            return await client.call_tool(params.name, params.arguments)
        except (MCPError, httpx2.HTTPError) as e:  # the service went away mid-session: a tool error
            text = f"dockyard_unreachable: the call did not complete: {e}"
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)

    return Server(
        "dockyard",
        version=__version__,
        instructions=client.instructions,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(settings: ClientSettings) -> None:
    if settings.api_token is None:
        raise BridgeError("DOCKYARD_API_TOKEN is not set (a token of the dockyard service, e.g. a bot's)")
    async with upstream(settings.api_url, settings.api_token.get_secret_value()) as client:
        server = proxy(client)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


def _cause(e: BaseException) -> BaseException:
    """The first leaf of (nested) exception groups: what actually went wrong."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


def main(settings: ClientSettings) -> int:
    """Run the bridge until the client closes stdin; a failure is one line on stderr, exit 2."""
    import anyio

    try:
        anyio.run(serve_stdio, settings)
    except KeyboardInterrupt:
        return 130
    except Exception as group:
        e = _cause(group)
        if isinstance(e, BridgeError):
            message = str(e)
        elif isinstance(e, httpx2.HTTPError):
            message = f"cannot talk to dockyard at {settings.api_url}: {e}"
        elif isinstance(e, MCPError):
            message = f"dockyard at {settings.api_url} refused the MCP session: {e}"
        else:
            raise
        print(f"dockyard mcp: {message}", file=sys.stderr)
        return 2
    return 0
