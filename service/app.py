"""build_app(settings) → web.Application: the route table, middlewares, and the lifecycle of
what the service holds (store, sandbox backend, job service) through `cleanup_ctx`."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web

from service import __version__, metrics
from service.api import audit, docs, git_host, health, jobs, lint, tests, tools
from service.api.middleware import (
    IDEMPOTENCY_KEY,
    TokenTable,
    auth_middleware,
    errors_middleware,
    idempotency_middleware,
    metrics_middleware,
)
from service.api.routing import ALL_ROLES, Route, openapi
from service.app_keys import BACKEND, GITHOST, IDEMPOTENCY, JOBS, LINT, SETTINGS, STREAMS, TESTS, TRAIL
from service.audit import SYSTEM
from service.console import pages as console
from service.console.sessions import Sessions, is_console
from service.env.service import EnvService
from service.errors import DockyardError
from service.events import EventHub
from service.github.client import GitHubApp
from service.github.git_host import GitHost
from service.idempotency import Idempotency
from service.images import resolve_images
from service.jobs import ImageState, JobService
from service.lint.runner import LintService
from service.logging import get_logger
from service.mcp.server import McpEndpoint
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
        Route(
            "GET",
            "/healthz",
            health.healthz,
            "Liveness",
            None,
            answer=Health,
            tag="service",
            description='The process answers: 200 `{"status": "ok"}`. Checks nothing else (see /readyz).',
        ),
        Route(
            "GET",
            "/readyz",
            health.readyz,
            "Readiness: engine reachable, config valid, images built",
            None,
            answer=Health,
            errors=(503,),
            tag="service",
            description=(
                "200 when the engine answers, the config is valid and the default language's image is built; "
                "else 503 with `checks` saying what is missing (`missing_images`, a `hint`). The audit key "
                "state and the SIEM sinks' state are reported, never a reason to be unready."
            ),
        ),
        Route(
            "GET",
            "/openapi.json",
            health.openapi_json,
            "This contract as OpenAPI 3.1",
            None,
            tag="service",
            description=(
                "This document. `x-agent-tools` lists the tools as an agent's model sees them (the bot "
                "reads it)."
            ),
        ),
        Route(
            "GET",
            "/metrics",
            audit.metrics_endpoint,
            "Prometheus metrics (unauthenticated, like /healthz: counts only, no ids or contents)",
            None,
            media_type="text/plain",
            tag="service",
            description=(
                "Prometheus text format: counts and durations by tool, outcome and status; no ids or "
                "contents."
            ),
        ),
        Route(
            "GET",
            "/v1/audit",
            audit.list_audit,
            "The audit log in seq order, filtered and paged (after / next_after)",
            AUDITOR,
            query=AuditQuery,
            answer=AuditList,
            tag="audit",
            description=(
                "Records in seq order, filtered by job, actor or role, action (a trailing * matches a "
                "prefix), "
                "time, tenant or path. Page with `after`: pass the answer's `next_after` until it is null. "
                "Records never hold file contents or tokens: paths and sha256 hashes only."
            ),
        ),
        Route(
            "GET",
            "/v1/audit/verify",
            audit.verify_audit,
            "Check the hash chain: ok, or the first altered or missing record",
            AUDITOR,
            answer=AuditVerifyResult,
            tag="audit",
            description=(
                "Recomputes the hash chain (and each record's MAC when the service holds an audit key) and "
                "answers `ok: true`, or `ok: false` with the first altered or missing record and why."
            ),
        ),
        Route(
            "GET",
            "/v1/images",
            health.images,
            "Languages, images and limits",
            BOT,
            answer=ImagesResult,
            tag="service",
            description=(
                "The image config in use: each image's content-hash tag and whether it is built, the "
                "languages with their detection patterns and linters, and the job limits (defaults, maxima)."
            ),
        ),
        Route(
            "GET",
            "/v1/config",
            health.get_config,
            "The config in use (admin)",
            ADMIN,
            answer=ConfigView,
            tag="config",
            description=(
                "The validated ops file, the image tags and the service settings in use (never a secret)."
            ),
        ),
        Route(
            "POST",
            "/v1/config/reload",
            health.reload_config,
            "Re-read the images/limits config without a restart (also on SIGHUP)",
            ADMIN,
            answer=ConfigView,
            tag="config",
            description=(
                "Re-reads the images/limits file; an invalid file is refused with `400 invalid_request` and "
                "the running config stays. `kill -HUP` does the same. Jobs keep the limits they got."
            ),
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
            headers=(IDEMPOTENCY_KEY,),
            tag="jobs",
            description=(
                "Clones `repo` (GitHub owner/name, through the GitHub App) or `clone_url` on the service "
                "side, "
                "then starts ONE hardened box with the tree at /workspace and answers `201` with the job "
                "`ready` (or `failed` with `error`). Limits above the ops maxima are cut to them "
                "(`limits.clamped`).\n\n"
                "Notable errors: `400 clone_source_forbidden` (a source the clone policy refuses, with the "
                "reason), "
                "`404 repo_not_found`/`ref_not_found`, `413 repo_too_large` (`details`: cap, limit, "
                "setting), "
                "`429 too_many_jobs`/`host_capacity_exhausted` (retry after `Retry-After`), `502 "
                "clone_failed`, "
                "`503 docker_unavailable`/`image_missing`."
            ),
        ),
        Route(
            "GET",
            "/v1/jobs",
            jobs.list_jobs,
            "List jobs, newest first",
            READERS,
            query=JobListQuery,
            answer=JobList,
            tag="jobs",
            description=(
                "Newest first, filtered by status and labels (each repeatable). A bot sees only its own "
                "tenant's jobs; auditors and admins may filter by `tenant`."
            ),
        ),
        Route(
            "GET",
            "/v1/jobs/{id}",
            jobs.get_job,
            "One job",
            READERS,
            answer=Job,
            errors=(404,),
            tag="jobs",
            description=(
                "The job's record: status, source, base_sha, image, limits, labels, commits, environment. "
                "`404 job_not_found` for an unknown id or another tenant's job."
            ),
        ),
        Route(
            "DELETE",
            "/v1/jobs/{id}",
            jobs.delete_job,
            "Remove the job's container and storage",
            BOT,
            status=204,
            errors=(404, 503),
            tag="jobs",
            description=(
                "Removes the box and its storage and answers `204`, also when the job is already destroyed "
                "(the record stays, `destroyed`). A create still running is waited for. "
                "`404 job_not_found` for an id that never existed."
            ),
        ),
        Route(
            "GET",
            "/v1/jobs/{id}/events",
            jobs.job_events,
            "The job's events (server-sent events)",
            READERS,
            media_type="text/event-stream",
            errors=(404, 429),
            tag="jobs",
            description=(
                "The job's progress and tool calls as server-sent events: past ones first, then live ones, "
                "ending with `job.destroyed` or `job.failed`. Each event's `id` is its seq: reconnect with "
                "`Last-Event-ID` to resume. `429 too_many_streams` over the stream caps (per job and in all)."
            ),
        ),
        Route(
            "GET",
            "/v1/jobs/{id}/logs",
            jobs.job_logs,
            "The container's own log",
            AUDITOR,
            media_type="text/plain",
            errors=(404, 503),
            tag="jobs",
            description=(
                "The container's own stdout/stderr (kept after the job ended). `503` when the engine is away."
            ),
        ),
        Route(
            "GET",
            "/v1/jobs/{id}/diff",
            jobs.job_diff,
            "The workspace against base_sha",
            READERS,
            answer=DiffResult,
            errors=TOOL_ERRORS,
            tag="diff & commit",
            description=(
                "Every change in the workspace against `base_sha`: files with status, mode and line counts, "
                "the unified patch (cut at the output cap: `patch_truncated`) and its sha256. After the job "
                "ended, the diff kept when it did (`kept: true`); `409 job_not_ready` when none was kept."
            ),
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
            headers=(IDEMPOTENCY_KEY,),
            tag="diff & commit",
            description=(
                "Commits the job's whole diff as ONE commit on `branch` through the Git Data API (a GitHub "
                "`repo` job only), optionally opening a draft pull request. Notable errors: "
                "`400 github_not_configured`, `403 branch_protected` (the default or a protected branch), "
                "`409 nothing_to_commit`/`commit_conflict`, `502 github_error`."
            ),
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
            tag="git host",
            description=(
                "The check runs and commit statuses of `sha` (default: the job's latest commit), folded into "
                "passed/failed/pending/no_ci; `wait_s` polls until they are done or the wait is over."
            ),
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
            tag="lint",
            description=(
                "Runs the linters the repository configures (else its language's default) on the changed "
                "files (or `paths`, or `all_files`), each in a fresh box with the workspace read-only. A "
                "diagnostic is `new` when the same linter did not report it at `base_sha`; only new ones "
                "fail "
                "the run. A linter that hangs is `timed_out`, one over its memory `oom_killed`: a result, "
                "not an error."
            ),
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
            tag="tests",
            description=(
                "Runs the repository's own test command (pytest, `npm test`/`node --test`, `go test`; else "
                "ops' "
                "default) in a fresh capped box and judges each failure new or not by a run at `base_sha`. "
                "A `command` of the caller's own is `403 forbidden` unless ops allow it."
            ),
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
                tag="tools",
                description=t.exposure.description,
            )
            for t in EXPOSED
            if t.exposure is not None
        ),
        *console.routes(),
        *docs.routes(),
    ]


def openapi_document() -> dict[str, Any]:
    """The contract as OpenAPI 3.1, from the route table alone (no settings, no engine): served at
    /openapi.json, printed by `dockyard openapi`, rendered into docs/API.md."""
    # The console's pages and the reference page are not the API: kept out of the document.
    table = [r for r in routes() if not is_console(r.path) and not docs.is_docs(r.path)]
    return {
        **openapi(table, title="dockyard control API", version=__version__),
        "x-agent-tools": agent_tools(),  # the tools as an agent's model sees them (the bot reads these)
    }


def build_app(settings: Settings) -> web.Application:
    """Validate config (raising ConfigError with a fixable message) and wire the application."""
    tokens = settings.tokens()
    audit_keys = settings.audit_keys()
    siem_sinks = build_sinks(settings)
    config = load_images_config(settings.images_config)
    images = ImageState(config, resolve_images(config, settings.images_config, settings))
    table = routes()
    mcp = McpEndpoint(table, settings.max_body_bytes)  # MCP tools take their roles from these routes
    table = [*table, *mcp.routes()]
    assert all(r.roles is None or r.roles <= ALL_ROLES for r in table)
    sessions = Sessions(settings.console_session_ttl_s, settings.console_max_sessions)
    token_table = TokenTable(dict(tokens))  # one table: the API and the console; swapped on reload
    route_index = {(r.method, r.path): r for r in table}

    app = web.Application(
        client_max_size=settings.max_body_bytes,
        # Every query the contract declares valid fits the request line: a 4096-character path of
        # 4-byte characters is 48 KiB percent-encoded (aiohttp's default line cap is 8 KiB).
        handler_args={"max_line_size": MAX_REQUEST_LINE, "max_field_size": MAX_REQUEST_LINE},
        middlewares=[
            metrics_middleware,  # outermost: counts what the client got, errors included
            errors_middleware,
            auth_middleware(token_table, route_index, sessions),
            idempotency_middleware(route_index),
        ],
    )
    app[SETTINGS] = settings
    app["dockyard.max_body"] = settings.max_body_bytes
    app["dockyard.openapi"] = openapi_document()
    for r in table:
        app.router.add_route(r.method, r.path, r.handler, name=r.handler.__name__)
    console.setup(app, token_table, sessions)

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
        app[JOBS].config.on_tokens.append(token_table.replace)  # reload re-reads the tokens file
        app[JOBS].config.on_tokens.append(lambda _: sessions.keep_only(token_table.actors()))
        app[IDEMPOTENCY] = Idempotency(store, settings.idempotency_ttl_s)
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
    app.cleanup_ctx.append(mcp.lifecycle)  # after the services it calls; stopped before them
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
