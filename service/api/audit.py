"""Audit routes (auditor, admin): the log, filtered and paged; the chain verified. And `/metrics`."""

from __future__ import annotations

import asyncio

from aiohttp import web

from service import metrics
from service.api.routing import answer, query
from service.app_keys import JOBS, TRAIL
from service.audit import ChainVerifier, record_json
from service.models import AuditList, AuditQuery, AuditRecordOut, AuditVerifyResult
from service.trail import read_anchors

BATCH = 2000


async def list_audit(request: web.Request) -> web.Response:
    q = query(request, AuditQuery)
    store = request.app[JOBS].store
    records = await store.audit_query(
        job_id=q.job_id,
        actor=q.actor,
        action=q.action,
        since=q.since,
        until=q.until,
        tenant=q.tenant,
        path=q.path,
        after=q.after,
        limit=q.limit + 1,
    )
    page = records[: q.limit]
    return answer(
        AuditList(
            records=[AuditRecordOut(**record_json(r)) for r in page],
            next_after=page[-1].seq if len(records) > q.limit else None,
        )
    )


async def verify_audit(request: web.Request) -> web.Response:
    store = request.app[JOBS].store
    trail = request.app.get(TRAIL)
    anchors = await asyncio.to_thread(read_anchors, trail.root) if trail is not None else {}
    verifier = ChainVerifier(anchors, store.keys)
    after = 0
    while True:
        rows = await store.audit_rows(after=after, limit=BATCH)
        # hashing and MAC checks are CPU work (~0.2 ms a record): off the event loop, so a verify
        # of a long chain (the console runs one per page) never stalls tool calls
        intact = await asyncio.to_thread(verifier.feed_rows, rows)
        if not intact or len(rows) < BATCH:
            break
        after = rows[-1]["seq"]
    result = verifier.result()
    return answer(AuditVerifyResult(**result.__dict__))


async def metrics_endpoint(request: web.Request) -> web.Response:
    jobs = request.app[JOBS]
    metrics.LIVE_JOBS.set(await jobs.store.count_live())
    metrics.HELPERS_LIVE.set(jobs.channels.live())
    metrics.HELPER_STARTS.set(jobs.channels.opened)
    body, content_type = metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})
