"""The SDK (sdk/dockyard_client) against the live `/openapi.json` of a real service: every operation
has an SDK method on both clients, every request field an SDK parameter, and every answer model the
same field names, required-ness and JSON types as the component it reads (failures name the field)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import requests
from dockyard_client import _async, _endpoints, _sync
from pydantic import BaseModel

from tests.conftest import Service

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def document(service: Service) -> dict[str, Any]:
    r = requests.get(f"{service.url}/openapi.json", timeout=30)
    assert r.status_code == 200, r.text[:300]
    return r.json()  # type: ignore[no-any-return]


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, ops in document["paths"].items()
        for method, op in ops.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def _sdk_method(surfaces: dict[str, type], sdk: str) -> Any:
    surface, _, name = sdk.partition(".")
    return getattr(surfaces[surface], name, None)


def test_every_operation_has_an_sdk_method(document: dict[str, Any]) -> None:
    unmapped = [
        f"{m} {p} ({op.get('operationId')})"
        for m, p, op in _operations(document)
        if (m, p) not in _endpoints.BY_OPERATION and (m, p) not in _endpoints.NOT_FOR_CLIENTS
    ]
    assert not unmapped, f"operations of the service with no SDK method (add them to _endpoints): {unmapped}"
    for e in _endpoints.ENDPOINTS:
        for surfaces in (_sync.SURFACES, _async.SURFACES):
            assert callable(_sdk_method(surfaces, e.sdk)), f"{e.method} {e.path}: no SDK method {e.sdk}"


def _request_fields(document: dict[str, Any], op: dict[str, Any]) -> list[str]:
    names = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is not None:
        names += list(_resolve(document, schema).get("properties", {}))
    return names


def test_every_request_field_is_an_sdk_parameter(document: dict[str, Any]) -> None:
    missing = []
    for m, p, op in _operations(document):
        e = _endpoints.BY_OPERATION.get((m, p))
        if e is None:
            continue
        for surfaces in (_sync.SURFACES, _async.SURFACES):
            params = set(inspect.signature(_sdk_method(surfaces, e.sdk)).parameters)
            for wire in _request_fields(document, op):
                name = e.wire_names.get(wire, wire)
                if wire not in e.internal and name not in params:
                    client = surfaces["client"].__name__
                    missing.append(f"{m} {p}: field {wire!r} is no parameter of {client} {e.sdk}")
    assert not missing, "\n".join(sorted(set(missing)))


# --- answer models ------------------------------------------------------------------------------------


def _resolve(defs_doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        defs = defs_doc.get("components", {}).get("schemas") or defs_doc.get("$defs", {})
        node = defs[name]
    return node


def _alternatives(node: dict[str, Any]) -> list[dict[str, Any]]:
    if "anyOf" in node:
        return [a for alt in node["anyOf"] for a in _alternatives(alt)]
    if "oneOf" in node:
        return [a for alt in node["oneOf"] for a in _alternatives(alt)]
    if isinstance(node.get("type"), list):
        return [{**node, "type": t} for t in node["type"]]
    return [node]


def _kind(doc: dict[str, Any], node: dict[str, Any]) -> str:
    if "$ref" in node:
        return "object"
    if "const" in node and "type" not in node:
        return type(node["const"]).__name__.replace("str", "string")
    return str(node.get("type", "any"))


# SDK fields a service older than the SDK may not send yet (then the SDK's default applies).
AHEAD_OF_SERVICE: dict[str, str] = {}


class Drift:
    def __init__(self, live: dict[str, Any], sdk: dict[str, Any]):
        self.live, self.sdk = live, sdk
        self.problems: list[str] = []
        self.seen: set[tuple[int, int]] = set()

    def model(self, where: str, live: dict[str, Any], sdk: dict[str, Any]) -> None:
        live, sdk = _resolve(self.live, live), _resolve(self.sdk, sdk)
        if (id(live), id(sdk)) in self.seen:
            return
        self.seen.add((id(live), id(sdk)))
        lp, sp = live.get("properties", {}), sdk.get("properties", {})
        for name in sorted(set(lp) - set(sp)):
            self.problems.append(f"{where}.{name}: in the live schema, not in the SDK model")
        for name in sorted(set(sp) - set(lp)):
            if f"{where}.{name}" in AHEAD_OF_SERVICE and name not in sdk.get("required", []):
                continue
            self.problems.append(f"{where}.{name}: in the SDK model, not in the live schema")
        lreq, sreq = set(live.get("required", [])), set(sdk.get("required", []))
        for name in sorted(set(lp) & set(sp)):
            if (name in lreq) != (name in sreq):
                self.problems.append(
                    f"{where}.{name}: required {'in the live schema' if name in lreq else 'in the SDK'} only"
                )
            self.value(f"{where}.{name}", lp[name], sp[name])

    def value(self, where: str, live: dict[str, Any], sdk: dict[str, Any]) -> None:
        la = {_kind(self.live, a): a for a in _alternatives(live)}
        sa = {_kind(self.sdk, a): a for a in _alternatives(sdk)}
        if "any" in sa:
            return  # the SDK takes anything here
        if set(la) != set(sa):
            self.problems.append(f"{where}: JSON types {sorted(la)} live, {sorted(sa)} in the SDK")
            return
        for kind in la:
            lv, sv = la[kind], sa[kind]
            if "enum" in sv and set(sv["enum"]) != set(lv.get("enum", sv["enum"] if "enum" in lv else [])):
                self.problems.append(f"{where}: values {lv.get('enum')} live, {sv['enum']} in the SDK")
            if kind == "array":
                self.value(f"{where}[]", lv.get("items", {}), sv.get("items", {}))
            elif kind == "object":
                if "$ref" in lv or "$ref" in sv:
                    if ("$ref" in lv) != ("$ref" in sv):
                        self.problems.append(f"{where}: a model on one side only")
                    else:
                        self.model(where, lv, sv)
                else:
                    la_, sa_ = lv.get("additionalProperties"), sv.get("additionalProperties")
                    if isinstance(la_, dict) and isinstance(sa_, dict):
                        self.value(f"{where}{{}}", la_, sa_)


def _answer_schema(document: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    op = document["paths"][path][method.lower()]
    for status, resp in op["responses"].items():
        if status.startswith("2"):
            for content in resp.get("content", {}).values():
                if "schema" in content:
                    return content["schema"]  # type: ignore[no-any-return]
    return None


def _sdk_schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")


def _answer_cases() -> list[Any]:
    return [pytest.param(e, id=f"{e.method} {e.path}") for e in _endpoints.ENDPOINTS if e.answer is not None]


@pytest.mark.parametrize("endpoint", _answer_cases())
def test_answer_model_matches_the_live_schema(
    document: dict[str, Any], endpoint: _endpoints.Endpoint
) -> None:
    if endpoint.path not in document["paths"]:
        pytest.skip(f"{endpoint.method} {endpoint.path} is not served by this service yet")
    live = _answer_schema(document, endpoint.method, endpoint.path)
    assert live is not None, f"{endpoint.method} {endpoint.path}: the live document gives no answer schema"
    assert endpoint.answer is not None
    sdk = _sdk_schema(endpoint.answer)
    drift = Drift(document, sdk)
    drift.model(endpoint.answer.__name__, live, sdk)
    assert not drift.problems, "SDK model drifted from /openapi.json:\n" + "\n".join(drift.problems)


def test_event_model_matches_the_live_schema(document: dict[str, Any]) -> None:
    from dockyard_client.models import JobEvent

    op = document["paths"]["/v1/jobs/{id}/events"]["get"]
    content = op["responses"]["200"].get("content", {}).get("text/event-stream", {})
    schema = content.get("schema") or content.get("itemSchema")
    if schema is None:
        pytest.skip("the live /openapi.json declares no schema for the SSE events yet")
    live = _resolve(document, schema)
    if "properties" not in live:  # e.g. a oneOf of event kinds: take the job event's
        alts = [_resolve(document, a) for a in _alternatives(live)]
        live = next((a for a in alts if "seq" in a.get("properties", {})), alts[0])
        frame_data = live.get("properties", {}).get("data", {})
        if "seq" not in live.get("properties", {}) and "contentSchema" in frame_data:
            # the wire frame: its `data` is the event's JSON, described by contentSchema
            # (allOf: the JobEvent model, then this event type's narrowing)
            content_schema = frame_data["contentSchema"]
            live = _resolve(document, content_schema.get("allOf", [content_schema])[0])
    sdk = _sdk_schema(JobEvent)
    drift = Drift(document, sdk)
    drift.model("JobEvent", live, sdk)
    assert not drift.problems, "SDK JobEvent drifted from /openapi.json:\n" + "\n".join(drift.problems)


def test_the_drift_check_can_fail(document: dict[str, Any]) -> None:
    """A model missing a field and another with a wrong type are both named."""
    from pydantic import ConfigDict

    class Stale(BaseModel):
        model_config = ConfigDict(extra="ignore")
        path: str
        deleted: str  # the live schema says boolean
        # timed_out / oom_killed missing

    sdk = _sdk_schema(Stale)
    drift = Drift(document, sdk)
    drift.model("Stale", document["components"]["schemas"]["DeleteFileResult"], sdk)
    text = "\n".join(drift.problems)
    assert "Stale.timed_out: in the live schema" in text
    assert "Stale.deleted: JSON types ['boolean'] live, ['string']" in text
