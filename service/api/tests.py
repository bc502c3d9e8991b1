"""Test route: run the repository's tests in a fresh capped box."""

from __future__ import annotations

from aiohttp import web

from service.api.routing import actor, answer, body
from service.app_keys import TESTS
from service.models import TestRequest


async def test_job(request: web.Request) -> web.Response:
    req = await body(request, TestRequest)
    return answer(await request.app[TESTS].test(request.match_info["id"], req, actor(request)))
