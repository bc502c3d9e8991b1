"""One table of routes: each with its roles and its pydantic models, so the same table wires
aiohttp, enforces roles in the auth middleware, and generates `/openapi.json`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from service.audit import Actor
from service.errors import InvalidRequest, PathOutsideWorkspace, PayloadTooLarge, codes_by_status
from service.events import EVENTS, STREAM_NOTICES
from service.models import ErrorResponse, JobEvent

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)

ACTOR_KEY = "dockyard.actor"
ALL_ROLES = frozenset({"bot", "auditor", "admin"})

# The areas of the API: each route names one (`Route.tag`); the document lists them in this order.
TAGS: dict[str, str] = {
    "jobs": "A job is one repository clone in ONE hardened box: create, list, inspect, follow, delete.",
    "tools": "The agent's tools: each is one audited call into the job's box (path confinement held "
    "by the kernel in the box).",
    "lint": "The repository's own linters, each in a fresh read-only box; only new diagnostics fail.",
    "tests": "The repository's tests in a fresh capped box; only failures new against base_sha fail.",
    "diff & commit": "The workspace against base_sha, and one commit of it (optionally a draft PR).",
    "git host": "The git host's CI results for a job's commit.",
    "audit": "The hash-chained audit log (auditors and admins).",
    "config": "The ops config in use, and its reload (admins).",
    "service": "Liveness, readiness, metrics, images, this document.",
}


@dataclass(frozen=True)
class HeaderParam:
    """A request header a route reads (emitted as an OpenAPI header parameter), with the error
    statuses it can add."""

    name: str
    description: str
    schema: dict[str, Any]
    required: bool = False
    errors: tuple[int, ...] = ()


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    roles: frozenset[str] | None  # None: public, no token needed
    body: type[BaseModel] | None = None
    answer: type[BaseModel] | None = None
    status: int = 200
    query: type[BaseModel] | None = None
    media_type: str = "application/json"
    errors: tuple[int, ...] = ()
    headers: tuple[HeaderParam, ...] = ()
    tag: str | None = None  # one of TAGS (every route of the document has one)
    description: str = ""  # what it does and when it fails, beyond the summary (markdown)

    def allows(self, role: str) -> bool:
        return self.roles is None or role == "admin" or role in self.roles


def actor(request: web.Request) -> Actor:
    value = request[ACTOR_KEY]
    assert isinstance(value, Actor)
    return value


def _validation_details(e: ValidationError) -> dict[str, Any]:
    return {
        "errors": [
            {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
            for err in e.errors()
        ]
    }


def _summary(e: ValidationError) -> str:
    first = e.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


async def body(request: web.Request, model: type[M]) -> M:
    """The request body as `model`: malformed JSON and schema violations are 400 invalid_request."""
    max_size = request.app["dockyard.max_body"]
    if request.content_length is not None and request.content_length > max_size:
        raise PayloadTooLarge(f"the request body is over the {max_size}-byte cap", {"cap_bytes": max_size})
    raw = await request.read()
    data = _parse_json(raw) if raw.strip() else {}
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object", {})
    try:
        # Strict: a boolean is true/false and an integer is a JSON integer, as the schema says (no
        # 0/1 or "5"); only JSON-natural conversions remain (an integer where a number is asked).
        return model.model_validate(data, strict=True)
    except ValidationError as e:
        raise _invalid(e, "invalid request") from e


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _number(text: str) -> float | int:
    """JSON (and JSON Schema) has one kind of number: 5.0 is the integer 5, as strict validation
    of an integer field needs it; a number field takes an int as it is."""
    value = float(text)
    return int(value) if value.is_integer() else value


def _parse_json(raw: bytes) -> Any:
    """JSON as RFC 8259 has it (no NaN/Infinity); depth and number size stay within the parser's
    limits or the body is refused, never a 500."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_number)
    except RecursionError:
        raise InvalidRequest("the request body is nested too deeply", {"reason": "too_deep"}) from None
    except (UnicodeDecodeError, ValueError) as e:
        # ValueError also covers an integer past Python's digit limit and NaN/Infinity.
        message = str(e).split(";")[0][:300]
        raise InvalidRequest(f"the request body is not valid JSON: {message}", {}) from None


# Validation errors a model raises with a contract code of their own (see service.models).
_CODED: dict[str, type[InvalidRequest]] = {"path_outside_workspace": PathOutsideWorkspace}


def _invalid(e: ValidationError, what: str) -> InvalidRequest:
    details = _validation_details(e)
    for err in e.errors():
        if err["type"] in _CODED:
            return _CODED[err["type"]](f"{what}: {_summary(e)}", details)
        if err["type"] == "name_too_long":
            return InvalidRequest(f"{what}: {_summary(e)}", {**details, "reason": "name_too_long"})
    return InvalidRequest(f"{what}: {_summary(e)}", details)


def validated(model: type[M], data: dict[str, Any]) -> M:
    """Decoded JSON arguments as `model`, checked as a request body is (strict, the contract's
    400 codes): for arguments that did not come through `body()`, e.g. an MCP tool call's."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as e:
        raise _invalid(e, "invalid arguments") from e


def query(request: web.Request, model: type[M]) -> M:
    """Query parameters as `model`; a list-typed field takes every repetition of its key."""
    raw: dict[str, Any] = {}
    for key in set(request.query):
        values = request.query.getall(key)
        field = model.model_fields.get(key)
        raw[key] = values if field is not None and "list" in str(field.annotation) else values[-1]
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise _invalid(e, "invalid query") from e


def answer(model: BaseModel, status: int = 200) -> web.Response:
    body = model.model_dump_json(by_alias=True).encode()
    return web.Response(body=body, status=status, content_type="application/json")


# --- OpenAPI 3.1 -------------------------------------------------------------------------------------

_STATUS_TEXT = {
    400: "Bad request",
    401: "Missing or unknown token",
    403: "Role may not do this",
    404: "Not found",
    409: "State conflict",
    413: "Payload too large",
    429: "Over a cap (live jobs, concurrent calls or streams): retry after Retry-After seconds",
    502: "Git host failed",
    503: "Docker engine unreachable",
}


def openapi(routes: list[Route], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of `routes`: every schema from the wire models (with their
    examples), each error status with the contract codes it can carry, the event stream's events."""
    from service.api.examples import example_of

    models: set[type[BaseModel]] = {ErrorResponse, JobEvent}
    for r in routes:
        models.update(m for m in (r.body, r.answer) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    keys: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation" if any(m is r.body for r in routes) else "serialization") for m in ordered
    ]
    keys += [(model, "serialization") for model in EVENTS.values()]
    refs, top = models_json_schema(keys, ref_template="#/components/schemas/{model}")
    schemas = top.get("$defs", {})
    for model, _ in keys:
        found = example_of(model)
        if found is not None:
            schemas[model.__name__]["examples"] = [found]

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return refs[(model, mode)]  # type: ignore[index]

    mode_of = dict(keys)
    codes = codes_by_status()
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"summary": r.summary, "operationId": r.handler.__name__}
        if r.tag is not None:
            op["tags"] = [r.tag]
        if r.roles is None:
            op["security"] = []
            access = "Public: no token needed."
        else:
            access = f"Roles: {', '.join(sorted(r.roles | {'admin'}))}."
        op["description"] = "\n\n".join(part for part in (r.description, access) if part)
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(r.path)
        ]
        if r.query is not None:
            qschema = r.query.model_json_schema()
            for name, prop in qschema.get("properties", {}).items():
                param: dict[str, Any] = {
                    "name": name,
                    "in": "query",
                    "required": name in qschema.get("required", []),
                    "schema": prop,
                }
                if "description" in prop:
                    param["description"] = prop["description"]
                params.append(param)
        params += [
            {"name": h.name, "in": "header", "required": h.required, "description": h.description}
            | {"schema": h.schema}
            for h in r.headers
        ]
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {
                # an empty body is read as {}: required unless the model takes {}
                "required": not _takes_empty(r.body),
                "content": {"application/json": _media(ref(r.body, mode_of[r.body]), example_of(r.body))},
            }
        responses: dict[str, Any] = {}
        if r.answer is not None:
            responses[str(r.status)] = {
                "description": "OK",
                "content": {r.media_type: _media(ref(r.answer, mode_of[r.answer]), example_of(r.answer))},
            }
        elif r.media_type == "text/event-stream":
            responses[str(r.status)] = {
                "description": _STREAM_TEXT,
                "content": {r.media_type: {"schema": _event_frame(refs)}},
            }
        else:
            responses[str(r.status)] = {
                "description": "OK" if r.status != 204 else "Done: no content",
                **({"content": {r.media_type: {}}} if r.status != 204 else {}),
            }
        error_statuses = set(r.errors) | _implied_errors(r)
        for status in sorted(error_statuses):
            responses[str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/Error{status}"}}},
            }
        op["responses"] = responses
        paths.setdefault(r.path, {})[r.method.lower()] = op
    used = sorted(
        {int(s) for ops in paths.values() for op in ops.values() for s in op["responses"] if int(s) >= 400}
    )
    schemas.update(_error_schemas(used, codes, schemas))
    tags = [r.tag for r in routes if r.tag is not None]
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": _INFO},
        "tags": [{"name": name, "description": text} for name, text in TAGS.items() if name in tags],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


_INFO = (
    "A sandboxed, containerised executor for AI code-fix agents: a job clones a repository into ONE "
    "hardened Docker box; the agent's tools, lint, tests and diff run against it, every call audited.\n\n"
    "Send `Authorization: Bearer <token>` (tokens and their roles: `DOCKYARD_API_TOKENS`). Every error "
    'is `{"error": {"code", "message", "details"}}` with one of the codes its status lists.'
)

_STREAM_TEXT = (
    "Server-sent events: the job's past events first (at most `sse_replay_max`), then live ones, each "
    "with its `seq` as the SSE id (reconnect with `Last-Event-ID` to resume). The stream ends after "
    "`job.destroyed` or `job.failed`. Comment lines are keep-alive pings."
)


def _media(schema: dict[str, Any], example: dict[str, Any] | None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return media


def _event_frame(refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    """One SSE event: its `event` name, its `id` (the seq), and `data` as JSON — a JobEvent whose
    `type` is the name and whose `data` is that event's model (service.events.EVENTS)."""
    frames = []
    for name, model in EVENTS.items():
        data_ref = refs[(model, "serialization")]
        if name in STREAM_NOTICES:  # the stream's own notice: not stored, no seq
            payload: dict[str, Any] = {
                "type": "object",
                "required": ["job_id", "type", "data"],
                "properties": {"job_id": {"type": "string"}, "type": {"const": name}, "data": data_ref},
            }
        else:
            payload = {
                "allOf": [
                    refs[(JobEvent, "serialization")],
                    {"properties": {"type": {"const": name}, "data": data_ref}},
                ]
            }
        frame: dict[str, Any] = {
            "type": "object",
            "title": name,
            "description": (model.__doc__ or "").strip(),
            "required": ["event", "data"],
            "properties": {
                "event": {"const": name},
                "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": payload},
            },
        }
        if name not in STREAM_NOTICES:
            frame["properties"]["id"] = {"type": "string", "pattern": "^[0-9]+$", "description": "the seq"}
            frame["required"] = ["event", "id", "data"]
        frames.append(frame)
    return {"oneOf": frames}


def _error_schemas(
    statuses: list[int], codes: dict[int, list[str]], schemas: dict[str, Any]
) -> dict[str, Any]:
    """`ErrorN` per status: the contract's error shape with `code` one of the codes at N."""
    body = schemas["ErrorBody"]
    found: dict[str, Any] = {}
    for status in statuses:
        at = codes.get(status, [])
        props = {
            **body["properties"],
            "code": {"type": "string", "enum": at, "title": "Code", "description": "the contract code"},
        }
        example = {
            "error": {
                "code": at[0] if at else "error",
                "message": _STATUS_TEXT.get(status, ""),
                "details": {},
            }
        }
        found[f"Error{status}"] = {
            "title": f"Error{status}",
            "description": f"{status}: {_STATUS_TEXT.get(status, 'Error')}",
            "type": "object",
            "additionalProperties": False,
            "required": ["error"],
            "properties": {"error": {**body, "title": f"ErrorBody{status}", "properties": props}},
            "examples": [example],
        }
    return found


def _takes_empty(model: type[BaseModel]) -> bool:
    try:
        model.model_validate({}, strict=True)
    except ValidationError:
        return False
    return True


def _implied_errors(r: Route) -> set[int]:
    """The statuses every route of a kind can answer, whatever its handler does: 400 for a bad
    parameter or body, 413 for a body over the cap, 404 for a job id that names no job (or another
    tenant's), 401/403 for a missing token or a role that may not call it."""
    statuses: set[int] = set()
    if r.body is not None or r.query is not None or _path_params(r.path):
        statuses.add(400)
    if r.body is not None:
        statuses.add(413)
    if "{id}" in r.path:
        statuses.add(404)
    if r.roles is not None:
        statuses |= {401, 403}
    for h in r.headers:
        statuses |= set(h.errors)
    return statuses


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
