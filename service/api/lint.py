"""Lint route: run the repository's own linters on the job's files."""

from __future__ import annotations

from aiohttp import web

from service.api.routing import actor, answer, body
from service.app_keys import LINT
from service.models import LintRequest


async def lint_job(request: web.Request) -> web.Response:
    req = await body(request, LintRequest)
    return answer(await request.app[LINT].lint(request.match_info["id"], req, actor(request)))
