"""Tool routes: validate the body, build the call, run it in the job's box, answer the result."""

from __future__ import annotations

from aiohttp import web

from service.api.routing import actor, answer, body
from service.app_keys import JOBS
from service.models import (
    ListDirectoryRequest,
    ReadFileRequest,
    ReplaceInFileRequest,
    SearchRequest,
    WriteFileRequest,
)
from service.tools import files, listing, search

MAX_ENTRIES = 5000


async def read_file(request: web.Request) -> web.Response:
    req = await body(request, ReadFileRequest)
    service = request.app[JOBS]
    call = files.read_call(req, service.settings.read_cap_bytes)
    result = await service.run_tool(
        request.match_info["id"], call, actor(request), lambda r: files.parse_read(req, r)
    )
    return answer(result)


async def write_file(request: web.Request) -> web.Response:
    req = await body(request, WriteFileRequest)
    service = request.app[JOBS]
    call = files.write_call(req, service.settings.write_cap_bytes)
    result = await service.run_tool(
        request.match_info["id"], call, actor(request), lambda r: files.parse_write(req, r)
    )
    return answer(result)


async def replace_in_file(request: web.Request) -> web.Response:
    req = await body(request, ReplaceInFileRequest)
    service = request.app[JOBS]
    call = files.replace_call(req, service.settings.write_cap_bytes)
    result = await service.run_tool(
        request.match_info["id"], call, actor(request), lambda r: files.parse_replace(req, r)
    )
    return answer(result)


async def list_directory(request: web.Request) -> web.Response:
    req = await body(request, ListDirectoryRequest)
    service = request.app[JOBS]
    call = listing.list_call(req, MAX_ENTRIES)
    result = await service.run_tool(
        request.match_info["id"], call, actor(request), lambda r: listing.parse_list(req, r)
    )
    return answer(result)


async def search_repo(request: web.Request) -> web.Response:
    req = await body(request, SearchRequest)
    service = request.app[JOBS]
    call = search.search_call(req)
    result = await service.run_tool(
        request.match_info["id"], call, actor(request), lambda r: search.parse_search(req, r)
    )
    return answer(result)
