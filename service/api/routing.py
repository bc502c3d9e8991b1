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
from service.errors import InvalidRequest, PathOutsideWorkspace, PayloadTooLarge
from service.models import ErrorResponse

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
M = TypeVar("M", bound=BaseModel)

ACTOR_KEY = "dockyard.actor"
ALL_ROLES = frozenset({"bot", "auditor", "admin"})


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
    models: set[type[BaseModel]] = {ErrorResponse}
    for r in routes:
        models.update(m for m in (r.body, r.answer) if m is not None)
    ordered = sorted(models, key=lambda m: m.__name__)
    keys: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (m, "validation" if any(m is r.body for r in routes) else "serialization") for m in ordered
    ]
    refs, top = models_json_schema(keys, ref_template="#/components/schemas/{model}")
    schemas = top.get("$defs", {})

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return refs[(model, mode)]  # type: ignore[index]

    mode_of = dict(keys)
    paths: dict[str, dict[str, Any]] = {}
    for r in routes:
        op: dict[str, Any] = {"summary": r.summary, "operationId": r.handler.__name__}
        if r.roles is None:
            op["security"] = []
        else:
            roles = sorted(r.roles | {"admin"})
            op["description"] = f"Roles: {', '.join(roles)}."
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(r.path)
        ]
        if r.query is not None:
            qschema = r.query.model_json_schema()
            for name, prop in qschema.get("properties", {}).items():
                params.append(
                    {
                        "name": name,
                        "in": "query",
                        "required": name in qschema.get("required", []),
                        "schema": prop,
                    }
                )
        if params:
            op["parameters"] = params
        if r.body is not None:
            op["requestBody"] = {
                # an empty body is read as {}: required unless the model takes {}
                "required": not _takes_empty(r.body),
                "content": {"application/json": {"schema": ref(r.body, mode_of[r.body])}},
            }
        responses: dict[str, Any] = {}
        if r.answer is not None:
            responses[str(r.status)] = {
                "description": "OK",
                "content": {r.media_type: {"schema": ref(r.answer, mode_of[r.answer])}},
            }
        else:
            responses[str(r.status)] = {
                "description": "OK",
                **({"content": {r.media_type: {}}} if r.status != 204 else {}),
            }
        error_statuses = set(r.errors) | _implied_errors(r)
        for status in sorted(error_statuses):
            responses[str(status)] = {
                "description": _STATUS_TEXT.get(status, "Error"),
                "content": {"application/json": {"schema": ref(ErrorResponse, mode_of[ErrorResponse])}},
            }
        op["responses"] = responses
        paths.setdefault(r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


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
    return statuses


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{") and part.endswith("}")]
