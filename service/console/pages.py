"""The console's pages. Read-only: every page is a GET over what the API already answers (the
store's job list and audit query, the diff, the container log, the chain's verification, the
outcome trail); the only POSTs are login and logout, which touch nothing but the session table."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from pydantic import BaseModel, ValidationError

from service.api import audit as audit_api
from service.api import jobs as jobs_api
from service.api.middleware import TokenTable
from service.api.routing import ACTOR_KEY, Route, actor
from service.app_keys import JOBS, TRAIL
from service.audit import SURFACED, Actor, AuditRecord
from service.console import render
from service.console.render import page
from service.console.sessions import COOKIE, PREFIX, Sessions, is_console
from service.errors import FAILURES, Forbidden, InvalidRequest, contract
from service.models import AuditQuery, AuditVerifyResult, DiffResult, JobListQuery

SESSIONS: web.AppKey[Sessions] = web.AppKey("console.sessions", Sessions)
TOKENS: web.AppKey[TokenTable] = web.AppKey("console.tokens", TokenTable)
CONSOLE_ROLES = frozenset({"auditor"})  # admin is implied (Route.allows)
RESULT_ACTIONS = ("lint", "test", "commit", "checks")
PAGE_RECORDS = 500
DIFF_LINES = 20_000
CSS = resources.files("service.console").joinpath("static/console.css").read_bytes()
M = TypeVar("M", bound=BaseModel)


# --- login / logout ----------------------------------------------------------------------------------


def _same_origin(request: web.Request) -> None:
    """A form posted from another site is refused (the cookie is SameSite=Strict as well)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null" and urlsplit(origin).netloc != request.host:
        raise Forbidden("the console's forms are posted from the console only", {"origin": origin})


def _next(value: str | None) -> str:
    if value and is_console(value) and "//" not in value and "\\" not in value:
        return value
    return PREFIX


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


async def login_form(request: web.Request) -> web.Response:
    context = {"who": None, "error": None, "next": _next(request.query.get("next"))}
    return page(request, "login.html", context)


async def login(request: web.Request) -> web.Response:
    _same_origin(request)
    form = await request.post()
    token = str(form.get("token", "")).strip()
    target = _next(str(form.get("next", "")))
    who = request.app[TOKENS].actor(token) if token else None
    if who is None:
        context = {"who": None, "error": "unknown token", "next": target}
        return page(request, "login.html", context, status=401)
    if who.role not in ("auditor", "admin"):
        context = {"who": None, "error": f"a {who.role} token may not use the console", "next": target}
        return page(request, "login.html", context, status=403)
    sessions = request.app[SESSIONS]
    session_id = sessions.open(who)
    response = _see_other(target)
    response.set_cookie(
        COOKIE,
        session_id,
        path=PREFIX,
        max_age=int(sessions.ttl_s),
        httponly=True,
        samesite="Strict",
        secure=request.app[JOBS].settings.console_cookie_secure,
    )
    return response


async def logout(request: web.Request) -> web.Response:
    _same_origin(request)
    request.app[SESSIONS].close(request.cookies.get(COOKIE))
    response = _see_other(f"{PREFIX}/login")
    response.del_cookie(COOKIE, path=PREFIX)
    return response


async def stylesheet(request: web.Request) -> web.Response:
    return web.Response(body=CSS, content_type="text/css", headers={"Cache-Control": "max-age=300"})


# --- reading -----------------------------------------------------------------------------------------


def _form(request: web.Request, model: type[M], **fixed: Any) -> M:
    """Query parameters of a filter form as `model`: an empty field is no filter; a time without a
    zone is UTC."""
    raw: dict[str, Any] = {}
    for key in set(request.query):
        values = [v for v in request.query.getall(key) if v.strip()]
        field = model.model_fields.get(key)
        if values and field is not None:
            raw[key] = values if "list" in str(field.annotation) else values[-1].strip()
    raw.update(fixed)
    try:
        parsed = model.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidRequest(f"invalid filter {where}: {first['msg']}", {}) from e
    for name in ("since", "until"):
        value = getattr(parsed, name, None)
        if isinstance(value, datetime) and value.tzinfo is None:
            parsed = parsed.model_copy(update={name: value.replace(tzinfo=UTC)})
    return parsed


async def _api(handler: Any, request: web.Request, model: type[M]) -> M:
    """What an API handler answers, as its model: the console shows the API's own answer."""
    response = await handler(request)
    assert isinstance(response, web.Response) and isinstance(response.body, bytes)
    return model.model_validate_json(response.body)


async def _verify(request: web.Request) -> AuditVerifyResult:
    return await _api(audit_api.verify_audit, request, AuditVerifyResult)


def _row(record: AuditRecord) -> dict[str, Any]:
    surfaced = {k: record.details.get(k) for k in SURFACED}
    extra = {k: v for k, v in record.details.items() if k not in SURFACED}
    return {"r": record, "hashes": surfaced, "extra": extra}


async def _records(request: web.Request, q: AuditQuery) -> tuple[list[dict[str, Any]], int | None]:
    store = request.app[JOBS].store
    # AuditQuery's fields are the store query's arguments, as GET /v1/audit passes them.
    found = await store.audit_query(**{**q.model_dump(), "limit": min(q.limit, PAGE_RECORDS) + 1})
    shown = found[: min(q.limit, PAGE_RECORDS)]
    more = shown[-1].seq if len(found) > len(shown) else None
    return [_row(r) for r in shown], more


def _filters(q: AuditQuery) -> dict[str, str]:
    values = {
        "actor": q.actor,
        "action": q.action,
        "path": q.path,
        "tenant": q.tenant,
        "job_id": q.job_id,
        "since": q.since.isoformat() if q.since else None,
        "until": q.until.isoformat() if q.until else None,
    }
    return {k: v for k, v in values.items() if v}


def _who(request: web.Request) -> Actor | None:
    value = request.get(ACTOR_KEY)
    return value if isinstance(value, Actor) else None


async def jobs_page(request: web.Request) -> web.Response:
    q = _form(request, JobListQuery)
    service = request.app[JOBS]
    jobs = await service.list(actor(request), list(q.status) if q.status else None, None, q.tenant, q.limit)
    context = {
        "who": _who(request),
        "jobs": jobs,
        "tenant": q.tenant or "",
        "statuses": set(q.status or []),
        "all_statuses": ("creating", "ready", "failed", "destroyed"),
    }
    return page(request, "jobs.html", context)


async def audit_page(request: web.Request) -> web.Response:
    q = _form(request, AuditQuery)
    verify = await _verify(request)
    rows, more = await _records(request, q)
    filters = _filters(q)
    context = {
        "who": _who(request),
        "verify": verify,
        "rows": rows,
        "filters": filters,
        "next_page": f"?{urlencode({**filters, 'after': more})}" if more is not None else None,
        "bad_link": _bad_link(verify),
    }
    return page(request, "audit.html", context)


def _bad_link(verify: AuditVerifyResult) -> str | None:
    if verify.first_bad_seq is None:
        return None
    seq = verify.first_bad_seq
    return f"{PREFIX}/audit?{urlencode({'after': max(seq - 1, 0)})}#seq-{seq}"


async def job_page(request: web.Request) -> web.Response:
    service = request.app[JOBS]
    job = await service.get(request.match_info["id"])
    q = _form(request, AuditQuery, job_id=job.id)
    rows, more = await _records(request, q)
    verify = await _verify(request)
    results = []
    for name in RESULT_ACTIONS:
        results += await service.store.audit_query(job_id=job.id, action=name, limit=PAGE_RECORDS)
    results.sort(key=lambda r: r.seq)
    trail = request.app.get(TRAIL)
    outcome = await trail.outcome(job.id) if trail is not None else None
    filters = {k: v for k, v in _filters(q).items() if k != "job_id"}
    context = {
        "who": _who(request),
        "job": job,
        "rows": rows,
        "verify": verify,
        "bad_link": _bad_link(verify),
        "results": results,
        "outcome": outcome,
        "filters": filters,
        "next_page": f"?{urlencode({**filters, 'after': more})}" if more is not None else None,
    }
    return page(request, "job.html", context)


async def diff_page(request: web.Request) -> web.Response:
    service = request.app[JOBS]
    job = await service.get(request.match_info["id"])
    diff: DiffResult | None = None
    problem: str | None = None
    try:
        diff = await _api(jobs_api.job_diff, request, DiffResult)
    except FAILURES as failure:
        e = contract(failure)
        # An ended job's diff is answered once the lead keeps its patch; until then, not kept.
        problem = "not kept" if e.status == 409 else f"{e.code}: {e.message}"
    lines = diff.patch.splitlines()[:DIFF_LINES] if diff is not None else []
    context = {
        "who": _who(request),
        "job": job,
        "diff": diff,
        "problem": problem,
        "lines": lines,
        "lines_cut": diff is not None and len(lines) == DIFF_LINES,
    }
    return page(request, "diff.html", context)


async def logs_page(request: web.Request) -> web.Response:
    service = request.app[JOBS]
    job = await service.get(request.match_info["id"])
    data = await service.logs(job.id, actor(request))
    context = {"who": _who(request), "job": job, "log": data.decode("utf-8", errors="replace")}
    return page(request, "logs.html", context)


def routes() -> list[Route]:
    """The console's routes (kept out of /openapi.json: pages, not the API)."""
    html = "text/html"
    return [
        Route("GET", PREFIX, jobs_page, "Console: jobs by tenant and status", CONSOLE_ROLES, media_type=html),
        Route("GET", f"{PREFIX}/login", login_form, "Console: login form", None, media_type=html),
        Route("POST", f"{PREFIX}/login", login, "Console: open a session", None, media_type=html),
        Route("POST", f"{PREFIX}/logout", logout, "Console: end the session", CONSOLE_ROLES, media_type=html),
        Route(
            "GET",
            f"{PREFIX}/static/console.css",
            stylesheet,
            "Console stylesheet",
            None,
            media_type="text/css",
        ),
        Route(
            "GET",
            f"{PREFIX}/audit",
            audit_page,
            "Console: the audit log and its chain",
            CONSOLE_ROLES,
            media_type=html,
        ),
        Route(
            "GET",
            f"{PREFIX}/jobs/{{id}}",
            job_page,
            "Console: a job's timeline",
            CONSOLE_ROLES,
            media_type=html,
        ),
        Route(
            "GET",
            f"{PREFIX}/jobs/{{id}}/diff",
            diff_page,
            "Console: a job's diff",
            CONSOLE_ROLES,
            media_type=html,
        ),
        Route(
            "GET",
            f"{PREFIX}/jobs/{{id}}/logs",
            logs_page,
            "Console: a job's container log",
            CONSOLE_ROLES,
            media_type=html,
        ),
    ]


def setup(app: web.Application, tokens: TokenTable, sessions: Sessions) -> None:
    """Templates, the token table the login form checks, the session table the middleware reads."""
    render.setup(app)
    app[TOKENS] = tokens
    app[SESSIONS] = sessions
