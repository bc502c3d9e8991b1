"""build_app(settings) → web.Application: the route table, middlewares, and the lifecycle of
what the service holds (store, sandbox backend, job service) through `cleanup_ctx`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from service import __version__, metrics
from service.api import audit, git_host, health, jobs, lint, tests, tools
from service.api.middleware import TokenTable, auth_middleware, errors_middleware
from service.api.routing import ALL_ROLES, Route, openapi
from service.app_keys import BACKEND, GITHOST, JOBS, LINT, SETTINGS, STREAMS, TESTS, TRAIL
from service.audit import SYSTEM
from service.console import pages as console
from service.console.sessions import Sessions, is_console
from service.env.service import EnvService
from service.errors import DockyardError
from service.events import EventHub
from service.github.client import GitHubApp
from service.github.git_host import GitHost
from service.images import resolve_images
from service.jobs import ImageState, JobService
from service.lint.runner import LintService
from service.logging import get_logger
from service.models import (
    AuditList,
    AuditQuery,
    AuditVerifyResult,
    ChecksQuery,
    ChecksResult,
    CommitRequest,
    CommitResult,
    ConfigView,
    DiffResult,
    Health,
    ImagesResult,
    Job,
    JobCreate,
    JobList,
    JobListQuery,
    LintRequest,
    LintResult,
    TestRequest,
    TestResult,
)
from service.reaper import Reaper, instance_id
from service.sandbox import make_backend
from service.settings import Settings, load_images_config
from service.siem import SiemService, build_sinks
from service.store import LIVE_STATUSES, Store
from service.tests_run.runner import TestService
from service.tools.registry import EXPOSED, agent_tools, route_path
from service.trail import OutcomeTrail

log = get_logger(__name__)

BOT = frozenset({"bot"})
READERS = frozenset({"bot", "auditor"})
AUDITOR = frozenset({"auditor"})
ADMIN = frozenset({"admin"})
MAX_REQUEST_LINE = 64 * 1024
TOOL_ERRORS = (404, 409, 413, 503)


def routes() -> list[Route]:
    return [
        Route("GET", "/healthz", health.healthz, "Liveness", None, answer=Health),
        Route(
            "GET",
            "/readyz",
            health.readyz,
            "Readiness: engine reachable, config valid, images built",
            None,
            answer=Health,
            errors=(503,),
        ),
        Route("GET", "/openapi.json", health.openapi_json, "This contract as OpenAPI 3.1", None),
        Route(
            "GET",
            "/metrics",
            audit.metrics_endpoint,
            "Prometheus metrics (unauthenticated, like /healthz: counts only, no ids or contents)",
            None,
            media_type="text/plain",
        ),
        Route(
            "GET",
            "/v1/audit",
            audit.list_audit,
            "The audit log in seq order, filtered and paged (after / next_after)",
            AUDITOR,
            query=AuditQuery,
            answer=AuditList,
        ),
        Route(
            "GET",
            "/v1/audit/verify",
            audit.verify_audit,
            "Check the hash chain: ok, or the first altered or missing record",
            AUDITOR,
            answer=AuditVerifyResult,
        ),
        Route("GET", "/v1/images", health.images, "Languages, images and limits", BOT, answer=ImagesResult),
        Route("GET", "/v1/config", health.get_config, "The config in use (admin)", ADMIN, answer=ConfigView),
        Route(
            "POST",
            "/v1/config/reload",
            health.reload_config,
            "Re-read the images/limits config without a restart (also on SIGHUP)",
            ADMIN,
            answer=ConfigView,
        ),
        Route(
            "POST",
            "/v1/jobs",
            jobs.create_job,
            "Create a job: clone, start its sandbox",
            BOT,
            body=JobCreate,
            answer=Job,
            status=201,
            errors=(404, 413, 429, 502, 503),
        ),
        Route(
            "GET",
            "/v1/jobs",
            jobs.list_jobs,
            "List jobs, newest first",
            READERS,
            query=JobListQuery,
            answer=JobList,
        ),
        Route("GET", "/v1/jobs/{id}", jobs.get_job, "One job", READERS, answer=Job, errors=(404,)),
        Route(
            "DELETE",
            "/v1/jobs/{id}",
            jobs.delete_job,
            "Remove the job's container and storage",
            BOT,
            status=204,
            errors=(404, 503),
        ),
        Route(
            "GET",
            "/v1/jobs/{id}/events",
            jobs.job_events,
            "The job's events (server-sent events)",
            READERS,
            media_type="text/event-stream",
            errors=(404, 429),
        ),
        Route(
            "GET",
            "/v1/jobs/{id}/logs",
            jobs.job_logs,
            "The container's own log",
            AUDITOR,
            media_type="text/plain",
            errors=(404, 503),
        ),
        Route(
            "GET",
            "/v1/jobs/{id}/diff",
            jobs.job_diff,
            "The workspace against base_sha",
            READERS,
            answer=DiffResult,
            errors=TOOL_ERRORS,
        ),
        Route(
            "POST",
            "/v1/jobs/{id}/commit",
            git_host.commit_job,
            "Commit the job's whole diff as ONE commit (Git Data API), optionally a draft PR",
            BOT,
            body=CommitRequest,
            answer=CommitResult,
            errors=(*TOOL_ERRORS, 502),
        ),
        Route(
            "GET",
            "/v1/jobs/{id}/checks",
            git_host.job_checks,
            "CI check runs and statuses of a commit; wait_s polls until done",
            BOT,
            query=ChecksQuery,
            answer=ChecksResult,
            errors=(*TOOL_ERRORS, 502),
        ),
        Route(
            "POST",
            "/v1/jobs/{id}/lint",
            lint.lint_job,
            "Run the repository's own linters, each in a fresh read-only box",
            BOT,
            body=LintRequest,
            answer=LintResult,
            errors=TOOL_ERRORS,
        ),
        Route(
            "POST",
            "/v1/jobs/{id}/test",
            tests.test_job,
            "Run the repository's tests in a fresh capped box; failures judged new against base_sha",
            BOT,
            body=TestRequest,
            answer=TestResult,
            errors=(*TOOL_ERRORS, 403),
        ),
        *(
            Route(
                "POST",
                route_path(t),
                tools.tool_handler(t),
                t.exposure.summary,
                BOT,
                body=t.exposure.request,
                answer=t.exposure.result,
                errors=TOOL_ERRORS,
            )
            for t in EXPOSED
            if t.exposure is not None
        ),
        *console.routes(),
    ]


def build_app(settings: Settings) -> web.Application:
    """Validate config (raising ConfigError with a fixable message) and wire the application."""
    tokens = settings.tokens()
    audit_keys = settings.audit_keys()
    siem_sinks = build_sinks(settings)
    config = load_images_config(settings.images_config)
    images = ImageState(config, resolve_images(config, settings.images_config, settings))
    table = routes()
    assert all(r.roles is None or r.roles <= ALL_ROLES for r in table)
    sessions = Sessions(settings.console_session_ttl_s, settings.console_max_sessions)

    app = web.Application(
        client_max_size=settings.max_body_bytes,
        # Every query the contract declares valid fits the request line: a 4096-character path of
        # 4-byte characters is 48 KiB percent-encoded (aiohttp's default line cap is 8 KiB).
        handler_args={"max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_REQUEST_LINE},
        middlewares=[
            errors_middleware,
            auth_middleware(dict(tokens), {(r.method, r.path): r for r in table}, sessions),
        ],
    )
    app[SETTINGS] = settings
    app["dockyard.max_body"] = settings.max_body_bytes
    app["dockyard.openapi"] = {
        # The console's pages are not the API: kept out of the contract's document.
        **openapi(
            [r for r in table if not is_console(r.path)], title="dockyard control API", version=__version__
        ),
        "x-agent-tools": agent_tools(),  # the tools as an agent's model sees them (the bot reads these)
    }
    for r in table:
        app.router.add_route(r.method, r.path, r.handler, name=r.handler.__name__)
    console.setup(app, TokenTable(dict(tokens)), sessions)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        store = await Store.open(settings.state_dir, audit_keys)
        await store.note_audit_key()
        if audit_keys is None:
            log.warning(
                "audit_chain_unkeyed",
                hint="set DOCKYARD_AUDIT_KEY_FILE (outside the state dir) so a rewrite of the state dir "
                "cannot pass `audit verify`",
            )
        store.on_audit.append(metrics.observe_audit)
        siem: SiemService | None = None
        if siem_sinks:
            siem = SiemService(store, siem_sinks, settings)
            await siem.start()  # catches up from each sink's cursor, then follows the commits
            app["dockyard.siem"] = siem  # status() for /readyz
        instance = await asyncio.to_thread(instance_id, settings.state_dir)
        backend = make_backend(settings, instance=instance)
        app[BACKEND] = backend
        github = GitHubApp(settings)
        app[JOBS] = JobService(settings, store, backend, images, EventHub(store), github)
        env = EnvService(app[JOBS], instance)
        await env.start()
        app[JOBS].env = env
        await env.adopt(await store.list_jobs(statuses=LIVE_STATUSES))
        trail: OutcomeTrail | None = None
        if settings.outcome_trail:
            trail = OutcomeTrail(settings.state_dir / "trail", store, app[JOBS].kept.root)
            await trail.start()
            app[TRAIL] = trail
            app[JOBS].on_end = trail.schedule
        # Reconcile with the engine before the first request; then reap on an interval.
        reaper = Reaper(app[JOBS], backend, instance, settings.reap_interval_s)
        await reaper.first_pass()
        reaper_task = asyncio.get_running_loop().create_task(reaper.run(), name="dockyard-reaper")
        backfill = (
            asyncio.get_running_loop().create_task(trail.backfill(), name="dockyard-trail-backfill")
            if trail is not None
            else None
        )
        app[GITHOST] = GitHost(app[JOBS], github)
        app[LINT] = LintService(app[JOBS], env.tool_env)
        app[TESTS] = TestService(app[JOBS])
        loop = asyncio.get_running_loop()
        reloads: set[asyncio.Task[None]] = set()

        async def reload_on_signal() -> None:
            try:
                await app[JOBS].reload_config(SYSTEM)
            except DockyardError as e:
                log.error("config_reload_failed", error=e.message)

        def on_hup() -> None:
            task = loop.create_task(reload_on_signal())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, on_hup)
        try:
            yield
        finally:
            # Sandboxes stay running: a restarted service adopts them again.
            loop.remove_signal_handler(signal.SIGHUP)
            await app[JOBS].drain(settings.shutdown_timeout_s)
            for task in (reaper_task, backfill):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if trail is not None:
                await trail.drain()
            await env.close()
            await app[JOBS].channels.close()  # helpers end with their stdin; boxes stay
            await backend.close()
            if siem is not None:
                await siem.stop()  # after the last record of the shutdown, before the store closes
            await store.close()

    app.cleanup_ctx.append(lifecycle)
    streams: set[Callable[[], None]] = set()
    app[STREAMS] = streams
    app.on_shutdown.append(end_streams)
    return app


async def end_streams(app: web.Application) -> None:
    """At shutdown, before requests in flight are awaited: end the event streams, which never end
    by themselves (clients resume with Last-Event-ID), so SIGTERM does not wait out the timeout."""
    open_streams = app[STREAMS]
    streams = list(open_streams)
    if streams:
        log.info("ending_streams", streams=len(streams))
    for stop in streams:
        stop()
