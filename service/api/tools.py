"""Tool routes: one handler per tool of the registry — validate the body, run it, answer."""

from __future__ import annotations

from aiohttp import web

from service.api.routing import Handler, actor, answer, body
from service.app_keys import JOBS
from service.tools.registry import AnyTool


def tool_handler(tool: AnyTool) -> Handler:
    exposure = tool.exposure
    assert exposure is not None, f"{tool.name} is not a route"

    async def handler(request: web.Request) -> web.Response:
        req = await body(request, exposure.request)
        result = await request.app[JOBS].run_tool(request.match_info["id"], tool, req, actor(request))
        return answer(result)

    handler.__name__ = handler.__qualname__ = tool.name
    return handler
