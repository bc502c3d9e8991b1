"""Job routes: create, get, list, delete, events (SSE), container logs, diff."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_sse import sse_response

from service.api.routing import actor, answer, body, query
from service.app_keys import JOBS
from service.errors import InvalidRequest
from service.models import CommitRef, EnvState, Job, JobCreate, JobEvent, JobList, JobListQuery, LimitsOut
from service.store import TERMINAL_STATUSES, EventRecord, JobRecord
from service.tools.diff import diff_call, parse_diff


def job_out(job: JobRecord, env: EnvState | None = None) -> Job:
    return Job(
        env=env,
        id=job.id,
        status=job.status,
        tenant=job.tenant,
        repo=job.repo,
        clone_url=job.clone_url,
        ref=job.ref,
        base_sha=job.base_sha,
        language=job.language,
        image=job.image,
        container_id=job.container_id,
        limits=LimitsOut(**job.limits),
        labels=job.labels,
        created_at=job.created_at,
        expires_at=job.expires_at,
        error=job.error,
        commits=[CommitRef(sha=c["sha"], branch=c["branch"]) for c in job.commits],
    )


async def create_job(request: web.Request) -> web.Response:
    req = await body(request, JobCreate)
    service = request.app[JOBS]
    job = await service.create(req, actor(request))
    return answer(job_out(job, service.env_state(job.id)), status=201)


async def get_job(request: web.Request) -> web.Response:
    service = request.app[JOBS]
    job = await service.get_checked(request.match_info["id"])
    return answer(job_out(job, service.env_state(job.id)))


async def list_jobs(request: web.Request) -> web.Response:
    q = query(request, JobListQuery)
    labels = dict(item.split(":", 1) for item in q.label or [])
    jobs = await request.app[JOBS].list(
        actor(request), list(q.status) if q.status else None, labels or None, q.tenant, q.limit
    )
    service = request.app[JOBS]
    return answer(JobList(jobs=[job_out(j, service.env_state(j.id)) for j in jobs]))


async def delete_job(request: web.Request) -> web.Response:
    await request.app[JOBS].delete(request.match_info["id"], actor(request))
    return web.Response(status=204)


async def job_logs(request: web.Request) -> web.Response:
    data = await request.app[JOBS].logs(request.match_info["id"], actor(request))
    return web.Response(body=data, content_type="text/plain", charset="utf-8")


async def job_diff(request: web.Request) -> web.Response:
    service = request.app[JOBS]
    job = await service.ready_job(request.match_info["id"])
    assert job.base_sha is not None
    base_sha = job.base_sha
    cap = service.settings.output_cap_bytes
    result = await service.run_tool(
        job.id, diff_call(base_sha), actor(request), lambda r: parse_diff(base_sha, r, cap)
    )
    return answer(result)


def _event_json(e: EventRecord) -> str:
    return JobEvent(seq=e.seq, at=e.at, job_id=e.job_id, type=e.type, data=e.data).model_dump_json()


END_EVENTS = ("job.destroyed", "job.failed")
# A job whose status says it ended but whose end event is not stored yet: the event follows its
# status change at once (or never, after a crash between the two), so wait this long for it.
END_EVENT_GRACE_S = 5.0


async def job_events(request: web.Request) -> web.StreamResponse:
    """Past events first, then live ones; the stream ends with the job's end event (or when the
    client leaves)."""
    service = request.app[JOBS]
    job = await service.get(request.match_info["id"])
    try:
        last = int(request.headers.get("Last-Event-ID", "0") or 0)
    except ValueError:
        raise InvalidRequest("Last-Event-ID must be an event's seq (an integer)", {}) from None
    queue = service.hub.subscribe(job.id)  # before the replay: nothing falls between the two
    try:
        async with sse_response(request, ping_interval=15) as sse:
            for event in await service.store.list_events(job.id, after_seq=last):
                await sse.send(_event_json(event), id=str(event.seq), event=event.type)
                last = event.seq
                if event.type in END_EVENTS:
                    return sse
            ended = (await service.get(job.id)).status in TERMINAL_STATUSES
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), END_EVENT_GRACE_S if ended else None)
                except TimeoutError:
                    return sse
                if event.seq <= last:
                    continue
                await sse.send(_event_json(event), id=str(event.seq), event=event.type)
                last = event.seq
                if event.type in END_EVENTS:
                    return sse
    finally:
        service.hub.unsubscribe(job.id, queue)
