"""schemathesis against the service's own `/openapi.json`, with a bot token and a live job: every
operation, schema-valid (positive) and schema-invalid (negative) requests, all of schemathesis's
response checks. Fails on any 5xx, any answer the document does not declare, and any request the
document calls valid that the service refuses (or the other way round)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import BaseModel, TypeAdapter, ValidationError
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.models import JobCreate
from tests.conftest import Api, JobFactory, Service

pytestmark = pytest.mark.docker

POSITIVE_EXAMPLES = 25
NEGATIVE_EXAMPLES = 12
CREATE_EXAMPLES = 8  # each valid POST /v1/jobs starts a real box
COVERAGE_CASES = 40
SEED = 20261201


def _run(strategy: st.SearchStrategy[Any], examples: int, test: Callable[[Any], None]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is reported as is
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        test(case)

    run()


# Refusals of the request models that JSON Schema cannot express (a rule on a path's components).
NOT_IN_SCHEMA = {"path_outside_workspace", "name_too_long"}


def _validated_as_declared(case: Any, response: Any) -> None:
    """A schema-valid request must pass the service's schema validation: a 400 listing validation
    errors (details.errors) for one means the document says less than the service checks."""
    if case.meta is None or case.meta.generation.mode is not GenerationMode.POSITIVE:
        return
    if response.status_code != 400:
        return
    errors = response.json()["error"]["details"].get("errors") or []
    declared = [e for e in errors if e["type"] not in NOT_IN_SCHEMA]
    assert not declared, (
        f"{case.method} {case.formatted_path}: a schema-valid request was refused by validation: "
        f"{response.text[:1000]}\nbody: {case.body!r:.1000} query: {case.query!r:.300}"
    )


def _valid(model: type[BaseModel], field: str, value: Any) -> bool:
    """`value` is a string the model's `field` takes (alone)."""
    if not isinstance(value, str):
        return False
    try:
        TypeAdapter(model.model_fields[field].annotation).validate_python(value, strict=True)
    except ValidationError:
        return False
    return bool(value) if field == "clone_url" else True


def test_the_openapi_document_holds(service: Service, api: Api, make_job: JobFactory) -> None:
    live = make_job()
    ended = make_job()
    assert api.delete(f"/v1/jobs/{ended['id']}").status_code == 204
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    headers = {"Authorization": f"Bearer {service.tokens['bot']}"}
    created: list[str] = []
    failures: list[str] = []

    def operations() -> list[Any]:
        ops = [result.ok() for result in schema.get_all_operations()]
        # DELETE /v1/jobs/{id} deletes the live job: it runs last.
        return sorted(ops, key=lambda op: (op.method.upper() == "DELETE", op.path, op.method))

    def check(case: Any) -> None:
        # positive_data_acceptance would call any 400 to a schema-valid request a failure, but a
        # valid request may still be refused for what no schema can say (an unknown language, a
        # path outside the workspace, a file that is not there): `_validated_as_declared` fails
        # only refusals by the service's own schema validation.
        response = case.call_and_validate(
            headers=headers, timeout=60, excluded_checks=[positive_data_acceptance]
        )
        _validated_as_declared(case, response)
        if (
            case.operation.path == "/v1/jobs"
            and case.method.upper() == "POST"
            and response.status_code == 201
        ):
            created.append(response.json()["id"])

    def pinned_source(case: Any) -> Any:
        """POST /v1/jobs clones what it is given: a schema-valid clone_url and ref become the
        fixture repository's (the rest of the body stays generated, and an invalid one stays
        invalid), never a random URL or ref this machine cannot fetch."""
        body = case.body
        if isinstance(body, dict):
            if _valid(JobCreate, "clone_url", body.get("clone_url")):
                body["clone_url"] = make_job.repo.url
            if _valid(JobCreate, "ref", body.get("ref")):
                body["ref"] = "main"
        return case

    try:
        for op in operations():
            label = f"{op.method.upper()} {op.path}"
            # A live job's event stream never ends: stream the ended job's (it ends with its end event).
            job_id = ended["id"] if op.path.endswith("/events") else live["id"]
            path_parameters = {"id": job_id} if "{id}" in op.path else None
            for mode, examples in (
                (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
                (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
            ):
                strategy = op.as_strategy(generation_mode=mode, path_parameters=path_parameters)
                if label == "POST /v1/jobs":
                    strategy = strategy.map(pinned_source)
                    examples = min(examples, CREATE_EXAMPLES)
                try:
                    _run(strategy, examples, check)
                except Unsatisfiable:
                    assert mode is GenerationMode.NEGATIVE, label  # no parameter to get wrong
                except (Exception, FailureGroup) as e:  # every operation is tried, all failures reported
                    failures.append(f"{label} [{mode.value}]: {e}"[:3000])
            # The coverage phase: boundary values, each constraint just met and just missed,
            # missing required parts, methods the route does not take.
            cases = schema.iter_coverage_cases(
                op,
                generation_modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                generation_config=schema.config.generation_for(operation=op, phase="coverage"),
            )
            for case in itertools.islice(cases, COVERAGE_CASES):
                if path_parameters:
                    case.path_parameters = dict(path_parameters)
                if label == "POST /v1/jobs":
                    case = pinned_source(case)
                try:
                    check(case)
                except (Exception, FailureGroup) as e:
                    failures.append(f"{label} [coverage]: {e}"[:3000])
    finally:
        for job_id in created:
            with contextlib.suppress(Exception):
                api.delete(f"/v1/jobs/{job_id}", timeout=60)
        make_job.ids.extend(created)
    assert not failures, "\n\n".join(failures)
