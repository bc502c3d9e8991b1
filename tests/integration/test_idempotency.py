"""Idempotency-Key on POST /v1/jobs (a retry never makes a second job) and the cursor on
GET /v1/jobs (every job once, in order, within the caller's tenant), against the real service."""

from __future__ import annotations

import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import Api, FixtureRepo, JobFactory, Service
from tests.integration.aux_service import aux

pytestmark = pytest.mark.docker


def post_job(api: Api, factory: JobFactory, key: str | None, **body: Any) -> requests.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    r = api.post("/v1/jobs", factory.body(**body), headers=headers)
    if r.status_code == 201:
        factory.ids.append(r.json()["id"])
    return r


def jobs_labelled(api: Api, key: str, value: str) -> list[dict[str, Any]]:
    r = api.get("/v1/jobs", params={"label": f"{key}:{value}"})
    assert r.status_code == 200, r.text
    return r.json()["jobs"]  # type: ignore[no-any-return]


def test_same_key_same_body_answers_the_first_answer_and_makes_one_job(api, make_job, unique):
    key, tag = unique("key"), unique("idem")
    first = post_job(api, make_job, key, labels={"idem": tag})
    assert first.status_code == 201 and "Idempotency-Replayed" not in first.headers
    # the same body, serialised differently (key order), is the same body
    again = api.post(
        "/v1/jobs",
        {"labels": {"idem": tag}, **make_job.body()},
        headers={"Idempotency-Key": key},
    )
    assert again.status_code == 201, again.text
    assert again.headers["Idempotency-Replayed"] == "true"
    assert again.json() == first.json()
    assert [j["id"] for j in jobs_labelled(api, "idem", tag)] == [first.json()["id"]]
    # without a key, the same body is a new job
    plain = post_job(api, make_job, None, labels={"idem": tag})
    assert plain.status_code == 201 and plain.json()["id"] != first.json()["id"]


def test_same_key_another_body_is_a_conflict(api, make_job, unique):
    key = unique("key")
    assert post_job(api, make_job, key, labels={"n": "1"}).status_code == 201
    err = api.error(post_job(api, make_job, key, labels={"n": "2"}), 409, "idempotency_conflict")
    assert "Idempotency-Key" in err["message"] and err["details"]["header"] == "Idempotency-Key"


def test_a_key_is_the_tenants_own(service: Service, api, make_job, fixture_repo, docker_client, unique):
    other = JobFactory(Api(service, service.tokens["bot_other"]), fixture_repo, docker_client)
    key, tag = unique("key"), unique("tenant")
    try:
        mine = post_job(api, make_job, key, labels={"t": tag})
        theirs = post_job(other.api, other, key, labels={"t": tag})
        assert mine.status_code == theirs.status_code == 201
        assert "Idempotency-Replayed" not in theirs.headers
        assert mine.json()["id"] != theirs.json()["id"] and theirs.json()["tenant"] == "team-b"
        # and a bot of the same tenant (another token) shares the key
        same = Api(service, service.tokens["bot_same"])
        replay = same.post("/v1/jobs", make_job.body(labels={"t": tag}), headers={"Idempotency-Key": key})
        assert replay.headers.get("Idempotency-Replayed") == "true" and replay.json()["id"] == mine.json()["id"]
    finally:
        other.cleanup()


def test_a_failed_first_attempt_is_not_kept(api, make_job, fixture_repo: FixtureRepo, tmp_path: Path, unique):
    """The repository does not exist yet (404): the retry with the same key runs again and succeeds."""
    later = tmp_path / "later-repo"
    key = unique("key")
    failed = post_job(api, make_job, key, clone_url=later.as_uri())
    api.error(failed, 404, "repo_not_found")
    shutil.copytree(fixture_repo.path, later, symlinks=True)
    subprocess.run(["git", "-C", str(later), "status"], check=True, capture_output=True)
    retry = post_job(api, make_job, key, clone_url=later.as_uri())
    assert retry.status_code == 201, retry.text
    assert "Idempotency-Replayed" not in retry.headers
    replay = post_job(api, make_job, key, clone_url=later.as_uri())
    assert replay.headers.get("Idempotency-Replayed") == "true" and replay.json()["id"] == retry.json()["id"]


def test_concurrent_requests_with_one_key_make_one_job(api, make_job, unique):
    key, tag = unique("key"), unique("race")
    results: list[requests.Response] = []

    def go() -> None:
        results.append(post_job(api, make_job, key, labels={"race": tag}))

    threads = [threading.Thread(target=go) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [201, 201, 201], [r.text[:300] for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert sorted(r.headers.get("Idempotency-Replayed", "no") for r in results) == ["no", "true", "true"]
    assert len(jobs_labelled(api, "race", tag)) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "a\tb"])
def test_an_invalid_key_is_invalid_request(api, make_job, key):
    r = api.post("/v1/jobs", make_job.body(), headers={"Idempotency-Key": key})
    err = api.error(r, 400, "invalid_request")
    assert err["details"]["header"] == "Idempotency-Key"


def test_a_key_of_255_printable_characters_is_fine(api, make_job):
    key = "~" * 200 + "0123456789 abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!#$%&'()*+,-./:"
    key = key[:255]
    assert post_job(api, make_job, key).status_code == 201


def test_the_header_is_in_the_openapi_document(anon_api):
    doc = anon_api.get("/openapi.json").json()
    for path in ("/v1/jobs", "/v1/jobs/{id}/commit"):
        op = doc["paths"][path]["post"]
        (param,) = [p for p in op["parameters"] if p["in"] == "header"]
        assert param["name"] == "Idempotency-Key" and param["schema"]["maxLength"] == 255
        assert "409" in op["responses"]
    listing = doc["paths"]["/v1/jobs"]["get"]
    assert "cursor" in [p["name"] for p in listing["parameters"]]
    assert "next_cursor" in doc["components"]["schemas"]["JobList"]["properties"]


# --- the cursor on GET /v1/jobs --------------------------------------------------------------------


def pages(api: Api, **params: Any) -> list[list[str]]:
    out: list[list[str]] = []
    cursor = None
    while True:
        r = api.get("/v1/jobs", params={**params, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        body = r.json()
        out.append([j["id"] for j in body["jobs"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return out
        assert len(out) < 50, "paging does not end"


def test_cursor_pages_through_every_job_once_in_order(api, auditor_api, make_job, unique):
    tag = unique("page")
    made = [make_job(labels={"page": tag})["id"] for _ in range(5)]
    got = pages(api, label=f"page:{tag}", limit=2)
    assert [len(p) for p in got] == [2, 2, 1]
    assert [i for p in got for i in p] == list(reversed(made))  # newest first, each once
    # a page that ends exactly at the last job says so
    assert pages(api, label=f"page:{tag}", limit=5) == [list(reversed(made))]
    # with a status filter too, and for an auditor (who sees every tenant)
    assert [i for p in pages(auditor_api, label=f"page:{tag}", status="ready", limit=3) for i in p] == list(
        reversed(made)
    )


def test_cursor_keeps_the_tenant(service: Service, api, make_job, unique):
    """Another tenant's bot with my cursor still sees only its own jobs."""
    tag = unique("mine")
    for _ in range(3):
        make_job(labels={"tenancy": tag})
    first = api.get("/v1/jobs", params={"label": f"tenancy:{tag}", "limit": 1}).json()
    assert first["next_cursor"]
    other = Api(service, service.tokens["bot_other"])
    r = other.get("/v1/jobs", params={"label": f"tenancy:{tag}", "limit": 1, "cursor": first["next_cursor"]})
    assert r.status_code == 200 and r.json()["jobs"] == [] and r.json()["next_cursor"] is None


@pytest.mark.parametrize("bad", ["nonsense", "e30.AAAA", "%%%.!!", "x" * 600])
def test_a_malformed_or_forged_cursor_is_invalid_request(api, bad):
    api.error(api.get("/v1/jobs", params={"cursor": bad}), 400, "invalid_request")


def test_an_altered_cursor_or_other_filters_are_invalid_request(api, make_job, unique):
    tag = unique("alter")
    make_job(labels={"alter": tag})
    make_job(labels={"alter": tag})
    cursor = api.get("/v1/jobs", params={"label": f"alter:{tag}", "limit": 1}).json()["next_cursor"]
    body, _, mac = cursor.partition(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + "." + mac
    err = api.error(api.get("/v1/jobs", params={"label": f"alter:{tag}", "cursor": flipped}), 400, "invalid_request")
    assert err["details"]["param"] == "cursor"
    err = api.error(api.get("/v1/jobs", params={"label": "alter:other", "cursor": cursor}), 400, "invalid_request")
    assert "filters" in err["message"]


# --- across a restart (an own service: the session's keeps running) ---------------------------------


def test_a_kept_answer_survives_a_restart(tmp_path, fixture_repo, docker_client, unique):
    with aux(tmp_path, fixture_repo, docker_client) as (svc, api, factory):
        key = unique("key")
        first = post_job(api, factory, key)
        assert first.status_code == 201
        assert post_job(api, factory, None).status_code == 201
        cursor_page = api.get("/v1/jobs", params={"limit": 1}).json()
        assert cursor_page["next_cursor"]
        svc.restart()
        again = post_job(api, factory, key)
        assert again.headers.get("Idempotency-Replayed") == "true" and again.json()["id"] == first.json()["id"]
        # a cursor given before the restart still works after it (its key is kept in the state)
        rest = api.get("/v1/jobs", params={"limit": 1, "cursor": cursor_page["next_cursor"]})
        assert rest.status_code == 200 and [j["id"] for j in rest.json()["jobs"]] == [first.json()["id"]]
