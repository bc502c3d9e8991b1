"""Tool routes: validate the body, build the call, run it in the job's box, answer the result.

Every tool handler is the same three steps, so they are made by one factory from the tool's
request model, its argv builder and its answer parser (all in `service.tools`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from service.api.routing import Handler, actor, answer, body
from service.app_keys import JOBS
from service.models import (
    ListDirectoryRequest,
    ReadFileRequest,
    ReplaceInFileRequest,
    SearchRequest,
    WriteFileRequest,
)
from service.sandbox.backend import ExecResult
from service.settings import Settings
from service.tools import files, listing, search
from service.tools.protocol import ToolCall

Req = TypeVar("Req", bound=BaseModel)
Res = TypeVar("Res", bound=BaseModel)

MAX_ENTRIES = 5000


def tool_route(
    name: str,
    model: type[Req],
    make_call: Callable[[Req, Settings], ToolCall],
    parse: Callable[[Req, ExecResult], Res],
) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        req = await body(request, model)
        service = request.app[JOBS]
        call = make_call(req, service.settings)
        result = await service.run_tool(
            request.match_info["id"], call, actor(request), lambda r: parse(req, r)
        )
        return answer(result)

    handler.__name__ = handler.__qualname__ = name
    return handler


read_file = tool_route(
    "read_file", ReadFileRequest, lambda r, s: files.read_call(r, s.read_cap_bytes), files.parse_read
)
write_file = tool_route(
    "write_file", WriteFileRequest, lambda r, s: files.write_call(r, s.write_cap_bytes), files.parse_write
)
replace_in_file = tool_route(
    "replace_in_file",
    ReplaceInFileRequest,
    lambda r, s: files.replace_call(r, s.write_cap_bytes),
    files.parse_replace,
)
list_directory = tool_route(
    "list_directory", ListDirectoryRequest, lambda r, s: listing.list_call(r, MAX_ENTRIES), listing.parse_list
)
search_repo = tool_route("search", SearchRequest, lambda r, s: search.search_call(r), search.parse_search)
