"""Tenants as an attacker with one bot token would try them: another tenant's jobs are invisible
(404 on every job route, nothing changed), lists and audit are scoped, and one tenant cannot take
every job slot or more host memory than the host has."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from tests.conftest import Api, FixtureRepo, JobFactory, Service
from tests.integration.aux_service import aux

pytestmark = pytest.mark.docker

SAMPLE_BODIES: dict[str, Any] = {
    "read_file": {"path": "README.md"},
    "write_file": {"path": "README.md", "content": "owned\n"},
    "replace_in_file": {"path": "README.md", "old": "hello", "new": "owned"},
    "list_directory": {"path": "."},
    "search": {"pattern": "hello"},
    "delete_file": {"path": "README.md"},
    "move_file": {"from": "README.md", "to": "gone.md"},
    "str_replace_based_edit_tool": {
        "command": "str_replace",
        "path": "README.md",
        "old_str": "hello",
        "new_str": "owned",
    },
    "lint": {},
    "test": {},
    "commit": {"branch": "fix/x", "message": "m"},
}


def job_routes(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) of the contract that names one job, from the service's own OpenAPI."""
    spec = api.get("/openapi.json").json()
    paths = spec["paths"]
    routes = [(method.upper(), path) for path, ops in paths.items() if "{id}" in path for method in ops]
    for method, path in routes:  # a valid body for each: refused for its job, never for its body
        takes_body = "requestBody" in paths[path][method.lower()]
        assert not takes_body or path.rsplit("/", 1)[-1] in SAMPLE_BODIES, f"no sample body for {path}"
    return routes


def call(api: Api, method: str, path: str, job_id: str) -> requests.Response:
    url = path.replace("{id}", job_id)
    tail = path.rsplit("/", 1)[-1]
    if method == "POST":
        return api.post(url, SAMPLE_BODIES.get(tail, {}))
    return api.request(method, url, params={"sha": "0" * 40} if tail == "checks" else None)


def test_another_tenants_job_is_not_found_on_every_route(
    service: Service, make_job: JobFactory, api: Api, auditor_api: Api
) -> None:
    job = make_job()
    other = Api(service, service.tokens["bot_other"])
    routes = job_routes(api)
    assert len(routes) >= 8, routes
    missing = "job_" + "0" * 16
    for method, path in routes:
        r = call(other, method, path, job["id"])
        if r.status_code == 403:  # a route the bot role may never call (logs): refused before lookup
            assert other.error(r, 403, "forbidden")
            continue
        err = other.error(r, 404, "job_not_found")
        # Indistinguishable from a job that never existed: same code, same message shape.
        never = other.error(call(other, method, path, missing), 404, "job_not_found")
        assert err["message"].replace(job["id"], "ID") == never["message"].replace(missing, "ID"), path
    # Nothing of it happened: the file is as cloned, the job still ready, listed for its tenant only.
    assert api.read(job["id"], "README.md")["content"] == make_job.repo.text("README.md")
    assert api.job(job["id"])["status"] == "ready"
    assert job["id"] not in [j["id"] for j in other.get("/v1/jobs").json()["jobs"]]
    assert job["id"] in [j["id"] for j in api.get("/v1/jobs").json()["jobs"]]
    # A bot cannot widen its list by asking for another tenant.
    asked = other.get("/v1/jobs", params={"tenant": "team-a"}).json()["jobs"]
    assert job["id"] not in [j["id"] for j in asked]


def test_same_tenant_tokens_share_jobs_and_auditors_see_tenants(
    service: Service, make_job: JobFactory, auditor_api: Api
) -> None:
    job = make_job()
    assert job["tenant"] == "team-a"
    same = Api(service, service.tokens["bot_same"])
    assert same.read(job["id"], "README.md")["path"] == "README.md"
    listed = auditor_api.get("/v1/jobs", params={"tenant": "team-a"}).json()["jobs"]
    assert job["id"] in [j["id"] for j in listed] and {j["tenant"] for j in listed} == {"team-a"}
    team_b = auditor_api.get("/v1/jobs", params={"tenant": "team-b"}).json()["jobs"]
    assert job["id"] not in [j["id"] for j in team_b] and all(j["tenant"] == "team-b" for j in team_b)
    records = auditor_api.get("/v1/audit", params={"job_id": job["id"], "limit": 1000}).json()["records"]
    assert records and {r["tenant"] for r in records} == {"team-a"}
    reads = auditor_api.get(
        "/v1/audit", params={"tenant": "team-a", "action": "tool.read_file", "path": "README.md"}
    ).json()["records"]
    assert any(r["job_id"] == job["id"] for r in reads)
    assert all(r["tenant"] == "team-a" for r in reads)
    foreign = auditor_api.get("/v1/audit", params={"tenant": "team-b", "job_id": job["id"]}).json()
    assert foreign["records"] == []


def test_one_tenant_cannot_take_every_job_slot(
    tmp_path: Any, fixture_repo: FixtureRepo, docker_client: Any
) -> None:
    with aux(tmp_path, fixture_repo, docker_client, DOCKYARD_TENANT_MAX_JOBS="1") as (svc, api, make_job):
        make_job()
        r = make_job.raw(make_job.body())
        err = api.error(r, 429, "too_many_jobs")
        assert int(r.headers["Retry-After"]) > 0
        assert err["details"]["tenant"] == "team-a" and err["details"]["tenant_max_jobs"] == 1
        other = JobFactory(Api(svc, svc.tokens["bot_other"]), fixture_repo, docker_client)
        try:
            assert other()["tenant"] == "team-b"  # the other tenant is still served
        finally:
            other.cleanup()


def test_admission_refuses_what_the_host_cannot_honour(
    tmp_path: Any, fixture_repo: FixtureRepo, docker_client: Any
) -> None:
    small = {"memory_mb": 128, "disk_mb": 128}
    # Room for one small job (128 + 128 + the 64 MiB /tmp) and not two.
    with aux(tmp_path, fixture_repo, docker_client, DOCKYARD_HOST_BUDGET_MB="500") as (svc, api, make_job):
        make_job(limits=small)
        r = make_job.raw(make_job.body(limits=small))
        err = api.error(r, 429, "host_capacity_exhausted")
        assert err["details"] == {"needed_mb": 320, "used_mb": 320, "budget_mb": 500}
        assert int(r.headers["Retry-After"]) > 0
        # The default caps (GiBs) do not fit at all, and say so before anything is cloned.
        api.error(make_job.raw(make_job.body()), 429, "host_capacity_exhausted")
        auditor = Api(svc, svc.tokens["auditor"])
        refused = auditor.get("/v1/audit", params={"action": "job.create", "limit": 100}).json()["records"]
        assert [x["outcome"] for x in refused if x["job_id"] is None] == ["host_capacity_exhausted"] * 2
        assert all(json.dumps(x).count("team-a") for x in refused if x["job_id"] is None)
