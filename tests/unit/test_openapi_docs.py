"""The OpenAPI document a newcomer reads: every operation tagged, summarised and described; every
request body and 2xx JSON answer with an example its own model accepts; each error status with
exactly the codes service/errors.py gives that status; the event stream's events from
service/events.py; the reference page with no external asset; docs/API.md as generated."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from pydantic import BaseModel

from service.api import docs
from service.api.examples import EXAMPLES
from service.api.reference import REGENERATE, markdown
from service.api.routing import TAGS
from service.app import openapi_document, routes
from service.errors import DockyardError, codes_by_status
from service.events import EVENTS, STREAM_NOTICES, check_event

REPO = Path(__file__).resolve().parents[2]
DOC = openapi_document()
OPS = [(m.upper(), p, op) for p, ops in DOC["paths"].items() for m, op in ops.items()]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].rsplit("/", 1)[-1]
    found: dict[str, Any] = DOC["components"]["schemas"][name]
    return found


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    root = {**schema, "components": DOC["components"]}
    return jsonschema.Draft202012Validator(root)


@pytest.mark.parametrize(("method", "path", "op"), OPS, ids=[f"{m} {p}" for m, p, _ in OPS])
def test_every_operation_has_a_tag_a_summary_and_a_real_description(
    method: str, path: str, op: dict[str, Any]
) -> None:
    assert len(op.get("tags", [])) == 1 and op["tags"][0] in TAGS, f"{method} {path}: set Route.tag"
    assert op["summary"].strip()
    described = op["description"].split("\n\nRoles:")[0].split("\n\nPublic:")[0]
    assert len(described) > 40, f"{method} {path}: a description beyond the roles (Route.description)"
    assert "Roles: " in op["description"] or "Public: " in op["description"]


def test_the_document_lists_each_tag_it_uses_once_with_a_description() -> None:
    used = {op["tags"][0] for _, _, op in OPS}
    listed = [t["name"] for t in DOC["tags"]]
    assert sorted(listed) == sorted(used) and len(set(listed)) == len(listed)
    assert all(t["description"] for t in DOC["tags"])


def _bodies_and_answers() -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for method, path, op in OPS:
        if "requestBody" in op:
            found.append(
                (f"{method} {path} request", "validation", op["requestBody"]["content"]["application/json"])
            )
        for status, response in op["responses"].items():
            media = response.get("content", {}).get("application/json")
            if status.startswith("2") and media is not None and "schema" in media:
                found.append((f"{method} {path} {status}", "serialization", media))
    return found


BODIES = _bodies_and_answers()


@pytest.mark.parametrize(("label", "mode", "media"), BODIES, ids=[b[0] for b in BODIES])
def test_every_body_and_answer_has_an_example_that_its_model_and_schema_accept(
    label: str, mode: str, media: dict[str, Any]
) -> None:
    name = media["schema"]["$ref"].rsplit("/", 1)[-1]
    model = next((m for m in EXAMPLES if m.__name__ == name), None)
    assert model is not None and "example" in media, (
        f"{label}: add an example for {name} in service/api/examples.py"
    )
    example = media["example"]
    assert _resolve(media["schema"])["examples"] == [example]
    if mode == "validation":
        model.model_validate(example, strict=True)  # as the service reads a request body
    else:
        model.model_validate(example)
    _validator(media["schema"]).validate(example)  # and the document's own schema says so


def test_every_example_is_one_its_model_accepts() -> None:
    for model, example in EXAMPLES.items():
        assert isinstance(model, type) and issubclass(model, BaseModel)
        model.model_validate(example)


def test_each_error_status_lists_exactly_the_codes_errors_py_gives_it() -> None:
    declared = codes_by_status()
    schemas = DOC["components"]["schemas"]
    statuses = {int(s) for _, _, op in OPS for s in op["responses"] if int(s) >= 400}
    for status in statuses:
        schema = schemas[f"Error{status}"]
        enum = schema["properties"]["error"]["properties"]["code"]["enum"]
        assert enum == declared[status]
        for code in enum:  # each maps back to an error class of that status
            classes = [c for c in _all_errors() if c.code == code]
            assert classes and all(c.status == status for c in classes), code
        _validator(schema).validate(schema["examples"][0])
    for _, _, op in OPS:
        for status, response in op["responses"].items():
            if int(status) >= 400:
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == f"#/components/schemas/Error{status}"


def _all_errors() -> list[type[DockyardError]]:
    found, todo = [], [DockyardError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_an_error_code_outside_its_status_enum_fails_the_schema() -> None:
    schema = DOC["components"]["schemas"]["Error404"]
    bad = {"error": {"code": "edit_mismatch", "message": "m", "details": {}}}
    with pytest.raises(jsonschema.ValidationError):
        _validator(schema).validate(bad)


def _event_frames() -> list[dict[str, Any]]:
    op = DOC["paths"]["/v1/jobs/{id}/events"]["get"]
    frames: list[dict[str, Any]] = op["responses"]["200"]["content"]["text/event-stream"]["schema"]["oneOf"]
    return frames


def test_the_event_stream_documents_every_declared_event_and_its_data() -> None:
    frames = {f["properties"]["event"]["const"]: f for f in _event_frames()}
    assert set(frames) == set(EVENTS)
    for name, model in EVENTS.items():
        example = EXAMPLES[model]
        check_event(name, example)
        content = frames[name]["properties"]["data"]["contentSchema"]
        if name in STREAM_NOTICES:
            payload: dict[str, Any] = {"job_id": "job_1", "type": name, "data": example}
        else:
            payload = {
                "seq": 3,
                "at": "2026-11-02T10:15:30Z",
                "job_id": "job_1",
                "type": name,
                "data": example,
            }
        _validator(content).validate(payload)
        with pytest.raises(jsonschema.ValidationError):  # another event's name does not fit
            _validator(content).validate({**payload, "type": "job.other"})


def test_the_service_refuses_to_publish_an_undeclared_event() -> None:
    with pytest.raises(ValueError, match="not declared"):
        check_event("job.exploded", {})
    with pytest.raises(ValueError):
        check_event("job.ready", {"status": "ready"})  # base_sha missing


def test_the_events_the_sse_handler_names_are_declared() -> None:
    from service.api import jobs

    assert set(jobs.END_EVENTS) <= set(EVENTS) and jobs.REPLAY_TRUNCATED in STREAM_NOTICES


def test_the_tool_routes_and_the_job_list_query_come_from_their_declarations() -> None:
    """No hand list: a new tool or a new query field shows up in the document by itself."""
    from service.models import JobListQuery
    from service.tools.registry import EXPOSED, route_path

    for t in EXPOSED:
        assert t.exposure is not None
        op = DOC["paths"][route_path(t)]["post"]
        assert op["tags"] == ["tools"] and op["description"].startswith(t.exposure.description)
    params = {p["name"] for p in DOC["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert params == set(JobListQuery.model_fields)


# --- the reference page ---------------------------------------------------------------------------


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in {"src", "href", "spec-url"} and value is not None:
                self.urls.append(value)


def test_the_docs_page_loads_only_same_origin_assets() -> None:
    parser = _Assets()
    parser.feed(docs.PAGE)
    assert parser.urls, "the page loads its script and the document"
    for url in parser.urls:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", url, re.I), f"{url}: not served by the service"
    assert not re.search(r"https?://", docs.PAGE)
    assert "default-src 'none'" in docs.CSP and "http" not in docs.CSP
    served = {r.path for r in docs.routes()}
    assert {"/docs", "/docs/redoc.standalone.js", "/docs/logo-mini.svg"} == served
    script = docs._script()
    assert b"cdn.redoc.ly" not in script and b'src:"docs/logo-mini.svg"' in script
    assert all(r.roles is None for r in docs.routes())  # no token, like /openapi.json
    assert not any(docs.is_docs(p) for p in DOC["paths"])  # pages, not the API
    assert any(r.path == "/docs" for r in routes())


# --- docs/API.md -----------------------------------------------------------------------------------


def test_docs_api_md_is_generated_from_the_current_document() -> None:
    path = REPO / "docs" / "API.md"
    assert path.exists(), f"docs/API.md is missing: run `{REGENERATE}`"
    assert path.read_text() == markdown(DOC), f"docs/API.md is out of date: run `{REGENERATE}`"


def test_the_reference_names_every_operation_its_errors_and_the_events() -> None:
    text = markdown(DOC)
    for method, path, op in OPS:
        assert f"### `{method} {path}`" in text
        assert op["summary"] in text
    for status, codes in codes_by_status().items():
        if f"Error{status}" in DOC["components"]["schemas"]:
            assert f"| {status} | " + ", ".join(f"`{c}`" for c in codes) + " |" in text
    for name in EVENTS:
        assert f"| `{name}` |" in text
    assert '"clone_url": "file:///srv/git/hello.git"' in text  # the examples, too
