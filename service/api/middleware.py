"""The ONE place failures become wire errors, plus request ids and bearer-token auth.

Every answer that is not a success has the contract's shape
`{"error": {"code", "message", "details"}}`: typed `DockyardError`s, aiohttp's own HTTP errors
(unknown route, wrong method, body too large) and anything unexpected (500, logged, no traceback
on the wire).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware

from service import idempotency, metrics
from service.api.routing import ACTOR_KEY, Handler, HeaderParam, Route, actor
from service.app_keys import IDEMPOTENCY, JOBS
from service.audit import Actor
from service.console.render import error_page
from service.console.sessions import COOKIE, PREFIX, Sessions, is_console
from service.errors import FAILURES, Forbidden, Unauthorized, contract
from service.logging import get_logger
from service.models import ErrorBody, ErrorResponse
from service.settings import TokenInfo, token_fingerprint

log = get_logger(__name__)

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "invalid_request",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body = ErrorResponse(error=ErrorBody(code=code, message=message, details=dict(details or {})))
    return web.Response(
        body=body.model_dump_json().encode(), status=status, content_type="application/json", headers=headers
    )


def _error(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    details: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The contract's JSON error; on a console route the same status and code as a page."""
    page = error_page(request, status, code, message) if is_console(request.path) else None
    if page is None:
        return error_response(status, code, message, details, headers)
    page.headers.update(headers or {})
    return page


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(8)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    job_id = request.match_info.get("id")
    if job_id:
        structlog.contextvars.bind_contextvars(job_id=job_id)
    try:
        response = await handler(request)
    except FAILURES as failure:
        e = contract(failure)  # a backend's neutral error as the contract's (the one mapping)
        if e.status >= 500:
            log.warning("request_failed", code=e.code, error=e.message, path=request.path)
        response = _error(request, e.status, e.code, e.message, e.details, e.headers())
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "http_error")
        message = {
            404: f"no route {request.method} {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: "the request body is over the configured cap",
        }.get(e.status, e.reason)
        details: dict[str, object] = {}
        if e.status == 405 and isinstance(e, web.HTTPMethodNotAllowed):
            details["allowed_methods"] = sorted(e.allowed_methods)
        response = _error(
            request, e.status, code, message, details, {k: v for k, v in e.headers.items() if k == "Allow"}
        )
    except ConnectionResetError:  # the client left before its answer was written: nothing to answer
        log.debug("client_left", path=request.path, method=request.method)
        raise
    except Exception:
        log.exception("internal_error", path=request.path, method=request.method)
        response = _error(
            request, 500, "internal_error", "internal error; see the service log", {"request_id": request_id}
        )
    response.headers["X-Request-Id"] = request_id
    return response


class TokenTable:
    """The configured bearer tokens, looked up by digest in constant time per entry. `replace`
    swaps the whole table (a config reload): a request already authenticated keeps its actor."""

    def __init__(self, tokens: dict[str, TokenInfo]):
        self._digests = self._table(tokens)

    @staticmethod
    def _table(tokens: dict[str, TokenInfo]) -> dict[bytes, tuple[str, TokenInfo]]:
        return {hashlib.sha256(t.encode()).digest(): (t, info) for t, info in tokens.items()}

    def replace(self, tokens: dict[str, TokenInfo]) -> None:
        self._digests = self._table(tokens)  # one assignment: a lookup sees the old or the new table

    def actors(self) -> set[Actor]:
        return {_actor_of(token, info) for token, info in self._digests.values()}

    def __len__(self) -> int:
        return len(self._digests)

    def actor(self, token: str) -> Actor | None:
        """The token's actor (its role plus a fingerprint, never the token), or None if unknown."""
        given = hashlib.sha256(token.encode()).digest()
        found = None
        for digest, pair in self._digests.items():
            if hmac.compare_digest(digest, given):
                found = pair
        if found is None:
            return None
        return _actor_of(*found)


def _actor_of(token: str, info: TokenInfo) -> Actor:
    return Actor(f"{info.role}-{token_fingerprint(token)}", info.role, info.tenant)


def auth_middleware(
    tokens: dict[str, TokenInfo] | TokenTable,
    routes: dict[tuple[str, str], Route],
    sessions: Sessions | None = None,
) -> Middleware:
    """Bearer tokens with roles and tenants. The actor's name is the role plus a token fingerprint,
    never the token. A route on one job (`{id}`) is answered only for the job's own tenant, or for
    auditors and admins: another tenant's job is `404 job_not_found`, like one that never existed.
    Console routes (/console) also take the console's session cookie; no other route does."""
    table = tokens if isinstance(tokens, TokenTable) else TokenTable(tokens)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        match = request.match_info
        if match.http_exception is not None:
            raise match.http_exception
        route = _route_of(request, routes)
        if route is None or route.roles is None:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if sessions is not None and not header and is_console(route.path):
            who = sessions.actor(request.cookies.get(COOKIE))
            if who is None:
                raise Unauthorized(f"no console session, or it expired: log in at {PREFIX}/login", {})
        else:
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'", {})
            found = table.actor(token.strip())
            if found is None:
                raise Unauthorized("unknown token", {})
            who = found
        role = who.role
        request[ACTOR_KEY] = who
        structlog.contextvars.bind_contextvars(actor=who.name, tenant=who.tenant)
        if not route.allows(role):
            allowed = sorted((route.roles or set()) | {"admin"})
            raise Forbidden(
                f"role {role!r} may not call {route.method} {route.path}; allowed: {', '.join(allowed)}",
                {"role": role, "allowed_roles": allowed},
            )
        job_id = match.get("id")
        if job_id is not None and "{id}" in route.path:
            await request.app[JOBS].authorize(job_id, who)
        return await handler(request)

    return middleware


def _route_of(request: web.Request, routes: dict[tuple[str, str], Route]) -> Route | None:
    match = request.match_info
    if match.http_exception is not None:
        return None
    resource = match.route.resource
    return routes.get((match.route.method, resource.canonical if resource else ""))


# --- HTTP request metrics ------------------------------------------------------------------------

UNMATCHED_ROUTE = "unmatched"  # the route label of a request no route matched (never its path)
CLIENT_LEFT = 499  # the status label of a request whose client left before its answer


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count and time every request by method, route TEMPLATE (`/v1/jobs/{id}`, never an id) and
    status. Outermost, so what it counts is what the client got (errors included)."""
    match = request.match_info
    resource = match.route.resource if match.http_exception is None else None
    route = resource.canonical if resource is not None else UNMATCHED_ROUTE
    method = request.method if resource is not None else "other"  # no label per made-up method
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as e:
        status = e.status
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        status = CLIENT_LEFT
        raise
    finally:
        metrics.observe_http(method, route, status, time.perf_counter() - started)


# --- Idempotency-Key -------------------------------------------------------------------------------

IDEMPOTENCY_KEY = HeaderParam(
    idempotency.HEADER,
    idempotency.DESCRIPTION,
    idempotency.KEY_SCHEMA,
    errors=(400, 409),
)


def idempotency_middleware(routes: dict[tuple[str, str], Route]) -> Middleware:
    """On a route declaring the Idempotency-Key header (after auth: a key is the tenant's), replay
    the first successful answer of a key, or refuse its reuse with another body (see
    service.idempotency)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = _route_of(request, routes)
        raw_key = request.headers.get(idempotency.HEADER)
        if route is None or raw_key is None or IDEMPOTENCY_KEY not in route.headers:
            return await handler(request)
        key = idempotency.check_key(raw_key)
        raw = await request.read()  # kept by aiohttp: the handler reads the same bytes again
        digest = idempotency.body_digest(raw)
        if digest is None:  # not JSON: the handler's own 400, and nothing is kept
            return await handler(request)
        who = actor(request)
        scope, path = who.tenant or who.name, f"{request.method} {request.path}"
        keys = request.app[IDEMPOTENCY]
        async with keys.hold(scope, path, key):
            stored = await keys.replay(scope, path, key, digest)
            if stored is not None:
                log.info("idempotent_replay", route=path, status=stored.status)
                return web.Response(
                    body=stored.body,
                    status=stored.status,
                    headers={"Content-Type": stored.content_type, idempotency.REPLAYED_HEADER: "true"},
                )
            response = await handler(request)
            if 200 <= response.status < 300 and isinstance(response, web.Response):
                body = response.body
                if isinstance(body, bytes):
                    content_type = response.headers.get("Content-Type", "application/json")
                    await keys.keep(scope, path, key, digest, response.status, content_type, body)
            return response

    return middleware
