"""Commit and checks routes: the job's diff as one commit on GitHub, and its CI verdict."""

from __future__ import annotations

from aiohttp import web

from service.api.routing import actor, answer, body, query
from service.app_keys import GITHOST
from service.models import ChecksQuery, CommitRequest


async def commit_job(request: web.Request) -> web.Response:
    req = await body(request, CommitRequest)
    return answer(await request.app[GITHOST].commit(request.match_info["id"], req, actor(request)))


async def job_checks(request: web.Request) -> web.Response:
    q = query(request, ChecksQuery)
    return answer(
        await request.app[GITHOST].checks(request.match_info["id"], q.sha, q.wait_s, actor(request))
    )
