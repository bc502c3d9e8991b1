"""`dockyard-bot serve`: a small HTTP endpoint that queues fix requests and works them with bounded
concurrency.

    POST /v1/fixes       {"repo", "ref", "title", "body", "requested_by", "webhook"}
                         → 202 {id, status, position}
    GET  /v1/fixes/{id}  the request's state and, once done, its outcome (PR URL, validation, cost)
    GET  /v1/fixes       all requests of this process, newest first
    GET  /healthz        liveness (no token)

Callers send `Authorization: Bearer $DOCKYARD_BOT_TOKEN`. A request whose `requested_by` has no
role in `DOCKYARD_BOT_USERS`, or a role not in `DOCKYARD_BOT_ALLOWED_ROLES`, is refused with `403`
and a reason. Errors use the control API's shape: `{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import ValidationError

from bot.fixer import FixOutcome, FixRequest, run_fix
from bot.progress import Sink, TerminalSink, WebhookSink
from bot.settings import BotSettings

Runner = Callable[[FixRequest, list[Sink]], Awaitable[FixOutcome]]
TaskStatus = Literal["queued", "running", "done", "failed", "cancelled"]


@dataclass
class FixTask:
    id: str
    request: FixRequest
    status: TaskStatus = "queued"
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: FixOutcome | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        req = self.request.model_dump(exclude={"webhook"})
        return {
            "id": self.id,
            "status": self.status,
            "request": req,
            "created_at": self.created_at.isoformat(),
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "outcome": self.outcome.to_json() if self.outcome else None,
            "error": self.error,
        }


def _error(status: int, code: str, message: str, details: dict[str, Any] | None = None) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return web.json_response(body, status=status)


class FixQueue:
    """Queued fix requests and `concurrency` workers that run them."""

    def __init__(self, settings: BotSettings, runner: Runner | None = None):
        self.settings = settings
        self.runner = runner or self._run
        self.tasks: dict[str, FixTask] = {}
        self.queue: asyncio.Queue[FixTask] = asyncio.Queue()
        self.workers: list[asyncio.Task[None]] = []
        self.running = 0

    async def _run(self, req: FixRequest, sinks: list[Sink]) -> FixOutcome:
        return await run_fix(req, self.settings, sinks=sinks)

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.workers = [loop.create_task(self._worker(i)) for i in range(self.settings.concurrency)]

    async def stop(self) -> None:
        for w in self.workers:
            w.cancel()
        for w in self.workers:
            with contextlib.suppress(asyncio.CancelledError):
                await w
        self.workers = []

    def refusal(self, req: FixRequest) -> str | None:
        """Why this requester may not ask for a fix (None: allowed)."""
        allowed = self.settings.allowed_role_set()
        allowed_text = ", ".join(sorted(allowed)) or "none"
        if not req.requested_by:
            return (
                "requested_by is required: fixes are granted by the requester's role "
                f"(allowed roles: {allowed_text})"
            )
        role = self.settings.user_roles().get(req.requested_by)
        if role is None:
            return (
                f"requested_by {req.requested_by!r} has no role in DOCKYARD_BOT_USERS; only roles "
                f"{allowed_text} may request fixes"
            )
        if role not in allowed:
            return (
                f"requested_by {req.requested_by!r} has role {role!r}, which may not request fixes "
                f"(allowed roles: {allowed_text})"
            )
        return None

    def webhook_refusal(self, req: FixRequest) -> str | None:
        hosts = {h.strip().lower() for h in self.settings.webhook_hosts.split(",") if h.strip()}
        if req.webhook is None or not hosts:
            return None
        host = (urlsplit(req.webhook).hostname or "").lower()
        return None if host in hosts else f"webhook host {host!r} is not in DOCKYARD_BOT_WEBHOOK_HOSTS"

    def submit(self, req: FixRequest) -> tuple[FixTask, int]:
        task = FixTask(id="fix_" + secrets.token_hex(8), request=req)
        self.tasks[task.id] = task
        self.queue.put_nowait(task)
        return task, self.queue.qsize()

    @property
    def waiting(self) -> int:
        return self.queue.qsize()

    async def _worker(self, index: int) -> None:
        while True:
            task = await self.queue.get()
            task.status, task.started_at = "running", datetime.now(UTC)
            self.running += 1
            sinks: list[Sink] = [TerminalSink(sys.stderr, live=False, prefix=f"{task.id} ")]
            if task.request.webhook:
                sinks.append(WebhookSink(task.request.webhook))
            try:
                task.outcome = await self.runner(task.request, sinks)
                task.status = "done" if task.outcome.ok else "failed"
                task.error = task.outcome.error
            except asyncio.CancelledError:
                task.status, task.error = "cancelled", "the bot was stopped"
                raise
            except Exception as e:
                task.status, task.error = "failed", f"{type(e).__name__}: {e}"
            finally:
                self.running -= 1
                task.finished_at = datetime.now(UTC)
                self.queue.task_done()


QUEUE = web.AppKey("queue", FixQueue)
SETTINGS = web.AppKey("settings", BotSettings)


@web.middleware
async def _auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.path == "/healthz":
        return await handler(request)
    token = request.app[SETTINGS].serve_token
    given = request.headers.get("Authorization", "")
    if token is None or not hmac.compare_digest(
        given.encode(), f"Bearer {token.get_secret_value()}".encode()
    ):
        return _error(401, "unauthorized", "send Authorization: Bearer <DOCKYARD_BOT_TOKEN>")
    return await handler(request)


async def healthz(request: web.Request) -> web.Response:
    q = request.app[QUEUE]
    return web.json_response({"status": "ok", "queued": q.waiting, "running": q.running})


async def submit(request: web.Request) -> web.Response:
    q = request.app[QUEUE]
    try:
        data = await request.json()
    except (ValueError, UnicodeDecodeError) as e:
        return _error(400, "invalid_request", f"the request body is not valid JSON: {e}")
    if not isinstance(data, dict):
        return _error(400, "invalid_request", "the request body must be a JSON object")
    try:
        req = FixRequest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return _error(
            400,
            "invalid_request",
            f"{where}: {first['msg']}",
            {"errors": [{"loc": [str(p) for p in x["loc"]], "msg": x["msg"]} for x in e.errors()]},
        )
    if req.clone_url is not None:
        return _error(
            400,
            "invalid_request",
            "clone_url: `dockyard-bot serve` opens pull requests, which need a GitHub repo; a fix from a "
            "clone URL is `dockyard-bot fix --clone-url URL --patch-out FILE`",
        )
    reason = q.refusal(req)
    if reason is not None:
        return _error(403, "forbidden", reason, {"requested_by": req.requested_by})
    reason = q.webhook_refusal(req)
    if reason is not None:
        return _error(400, "invalid_request", reason)
    if q.waiting >= request.app[SETTINGS].queue_max:
        return _error(429, "queue_full", f"{q.waiting} requests are waiting; try again later")
    task, position = q.submit(req)
    return web.json_response({"id": task.id, "status": task.status, "position": position}, status=202)


async def get_task(request: web.Request) -> web.Response:
    task = request.app[QUEUE].tasks.get(request.match_info["id"])
    if task is None:
        return _error(404, "not_found", f"no fix request {request.match_info['id']!r}")
    return web.json_response(task.to_json(), dumps=lambda o: json.dumps(o, default=str))


async def list_tasks(request: web.Request) -> web.Response:
    tasks = sorted(request.app[QUEUE].tasks.values(), key=lambda t: t.created_at, reverse=True)
    return web.json_response(
        {"fixes": [t.to_json() for t in tasks]}, dumps=lambda o: json.dumps(o, default=str)
    )


def build_app(settings: BotSettings, runner: Runner | None = None) -> web.Application:
    app = web.Application(middlewares=[_auth], client_max_size=1024 * 1024)
    app[SETTINGS] = settings
    app[QUEUE] = FixQueue(settings, runner)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        app[QUEUE].start()
        yield
        await app[QUEUE].stop()

    app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/fixes", submit)
    app.router.add_get("/v1/fixes", list_tasks)
    app.router.add_get("/v1/fixes/{id}", get_task)
    return app
