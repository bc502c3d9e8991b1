"""Job routes: create, get, list, delete, events (SSE), container logs, diff."""

from __future__ import annotations

import asyncio
import contextlib
import json
import weakref
from collections.abc import Iterator

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from service.api.routing import actor, answer, body, query
from service.app_keys import JOBS, STREAMS
from service.errors import InvalidRequest, TooManyStreams
from service.jobs import JobService
from service.logging import get_logger
from service.models import (
    SEQ_MAX,
    CommitRef,
    EnvState,
    Job,
    JobCreate,
    JobEvent,
    JobList,
    JobListQuery,
    LimitsOut,
)
from service.settings import Settings
from service.store import TERMINAL_STATUSES, EventRecord, JobRecord

log = get_logger(__name__)


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
    """Newest first, `limit` at a time; `next_cursor` continues where a page ended (service.cursor)."""
    service = request.app[JOBS]
    jobs, next_cursor = await service.page(actor(request), query(request, JobListQuery))
    return answer(JobList(jobs=[job_out(j, service.env_state(j.id)) for j in jobs], next_cursor=next_cursor))


async def delete_job(request: web.Request) -> web.Response:
    await request.app[JOBS].delete(request.match_info["id"], actor(request))
    return web.Response(status=204)


async def job_logs(request: web.Request) -> web.Response:
    data = await request.app[JOBS].logs(request.match_info["id"], actor(request))
    return web.Response(body=data, content_type="text/plain", charset="utf-8")


async def job_diff(request: web.Request) -> web.Response:
    """The live workspace's diff; after the job ended, the diff kept when it did."""
    return answer(await request.app[JOBS].diff(request.match_info["id"], actor(request)))


def _event_json(e: EventRecord) -> str:
    return JobEvent(seq=e.seq, at=e.at, job_id=e.job_id, type=e.type, data=e.data).model_dump_json()


END_EVENTS = ("job.destroyed", "job.failed")
# A job whose status says it ended but whose end event is not stored yet: the event follows its
# status change at once (or never, after a crash between the two), so wait this long for it.
END_EVENT_GRACE_S = 5.0
REPLAY_TRUNCATED = "replay.truncated"


class _Streams:
    """The open event streams, in all and per job, held under the `sse_max_streams*` caps."""

    def __init__(self) -> None:
        self.total = 0
        self.per_job: dict[str, int] = {}

    @contextlib.contextmanager
    def slot(self, job_id: str, settings: Settings) -> Iterator[None]:
        on_job = self.per_job.get(job_id, 0)
        if self.total >= settings.sse_max_streams or on_job >= settings.sse_max_streams_per_job:
            raise TooManyStreams(
                f"{on_job} event streams are open on this job and {self.total} in all; the caps are "
                f"{settings.sse_max_streams_per_job} per job and {settings.sse_max_streams} in all",
                retry_after_s=int(settings.sse_ping_interval_s) + 1,
                details={
                    "job_streams": on_job,
                    "streams": self.total,
                    "max_streams_per_job": settings.sse_max_streams_per_job,
                    "max_streams": settings.sse_max_streams,
                },
            )
        self.total += 1
        self.per_job[job_id] = on_job + 1
        try:
            yield
        finally:
            self.total -= 1
            left = self.per_job.pop(job_id) - 1
            if left:
                self.per_job[job_id] = left


_STREAMS: weakref.WeakKeyDictionary[JobService, _Streams] = weakref.WeakKeyDictionary()


async def job_events(request: web.Request) -> web.StreamResponse:
    """The newest past events first (at most `sse_replay_max`; a `replay.truncated` event first
    when older ones after Last-Event-ID were left out), then live ones. The stream ends with the
    job's end event, or when the client leaves (seen at the latest by the next keep-alive ping)."""
    service = request.app[JOBS]
    settings = service.settings
    job = await service.get(request.match_info["id"])
    try:
        last = int(request.headers.get("Last-Event-ID", "0") or 0)
    except ValueError:
        last = -1
    if not 0 <= last <= SEQ_MAX:
        raise InvalidRequest("Last-Event-ID must be an event's seq (an integer from 0)", {})
    with _STREAMS.setdefault(service, _Streams()).slot(job.id, settings):
        queue = service.hub.subscribe(job.id)  # before the replay: nothing falls between the two
        sse = EventSourceResponse(ping_interval=settings.sse_ping_interval_s)
        try:
            await sse.prepare(request)
            request.app[STREAMS].add(sse.stop_streaming)  # ended at shutdown
            async with sse:
                await _replay_and_follow(service, sse, job.id, last, queue)
        except ConnectionResetError:  # the client left mid-write: its business, not an error
            log.debug("sse_client_left", job_id=job.id)
        finally:
            request.app[STREAMS].discard(sse.stop_streaming)
            service.hub.unsubscribe(job.id, queue)
    return sse


async def _replay_and_follow(
    service: JobService, sse: EventSourceResponse, job_id: str, last: int, queue: asyncio.Queue[EventRecord]
) -> None:
    window = service.settings.sse_replay_max
    past = await service.store.list_events(job_id, after_seq=last, newest=window + 1)
    if len(past) > window:
        past = past[1:]
        data = {"after_seq": last, "first_seq": past[0].seq, "replay_max": window}
        notice = {"job_id": job_id, "type": REPLAY_TRUNCATED, "data": data}
        await sse.send(json.dumps(notice), event=REPLAY_TRUNCATED)
    for event in past:
        await sse.send(_event_json(event), id=str(event.seq), event=event.type)
        last = event.seq
        if event.type in END_EVENTS:
            return
    ended = (await service.get(job_id)).status in TERMINAL_STATUSES
    left = asyncio.ensure_future(sse.wait())  # done once a ping finds the client gone
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait(
                {getter, left},
                timeout=END_EVENT_GRACE_S if ended else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if getter not in done:
                getter.cancel()
                if left in done:
                    log.debug("sse_client_left", job_id=job_id)
                return
            event = getter.result()
            if event.seq <= last:
                continue
            await sse.send(_event_json(event), id=str(event.seq), event=event.type)
            last = event.seq
            if event.type in END_EVENTS:
                return
    finally:
        left.cancel()
