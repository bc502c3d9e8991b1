"""The HTTP edge: auth and roles, error shape for bad input, public routes, OpenAPI, images."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


# --- public routes ------------------------------------------------------------------------------


def test_healthz_without_token(anon_api):
    r = anon_api.get("/healthz")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")


def test_readyz_without_token(anon_api):
    r = anon_api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"


def test_openapi_is_public_and_describes_the_api(anon_api):
    r = anon_api.get("/openapi.json")
    assert r.status_code == 200, r.text
    spec = r.json()
    assert spec["openapi"].startswith("3.1")
    assert "/v1/jobs" in spec["paths"]
    assert "/v1/jobs/{id}/tools/read_file" in spec["paths"]
    assert "/v1/jobs/{id}" in spec["paths"]
    assert "post" in spec["paths"]["/v1/jobs"] and "get" in spec["paths"]["/v1/jobs"]


# --- auth -----------------------------------------------------------------------------------------


def test_missing_token_is_401(anon_api):
    anon_api.error(anon_api.get("/v1/jobs"), 401, "unauthorized")


def test_unknown_token_is_401(anon_api):
    r = anon_api.get("/v1/jobs", headers={"Authorization": "Bearer not-a-real-token-0123456789"})
    anon_api.error(r, 401, "unauthorized")


def test_non_bearer_scheme_is_401(anon_api, service):
    r = anon_api.get("/v1/jobs", headers={"Authorization": f"Basic {service.tokens['bot']}"})
    anon_api.error(r, 401, "unauthorized")


def test_missing_token_on_a_tool_is_401_before_anything_else(anon_api):
    anon_api.error(anon_api.post("/v1/jobs/job_whatever/tools/read_file", {"path": "x"}), 401, "unauthorized")


def test_auditor_may_not_call_tools(auditor_api, job):
    r = auditor_api.post(f"/v1/jobs/{job['id']}/tools/read_file", {"path": "README.md"})
    auditor_api.error(r, 403, "forbidden")
    r = auditor_api.post(f"/v1/jobs/{job['id']}/tools/write_file", {"path": "planted.txt", "content": "x"})
    auditor_api.error(r, 403, "forbidden")


def test_auditor_may_not_create_or_delete_jobs(auditor_api, job, fixture_repo):
    auditor_api.error(auditor_api.post("/v1/jobs", {"clone_url": fixture_repo.url}), 403, "forbidden")
    auditor_api.error(auditor_api.delete(f"/v1/jobs/{job['id']}"), 403, "forbidden")


def test_auditor_can_list_jobs(auditor_api, job):
    r = auditor_api.get("/v1/jobs")
    assert r.status_code == 200, r.text
    assert job["id"] in [j["id"] for j in r.json()["jobs"]]


def test_admin_can_do_what_bot_can(admin_api, job):
    r = admin_api.post(f"/v1/jobs/{job['id']}/tools/read_file", {"path": "crlf.txt"})
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "a\r\nb\r\n"


# --- bad input ------------------------------------------------------------------------------------


def test_malformed_json_is_invalid_request(api):
    r = api.post("/v1/jobs", data=b'{"clone_url": ', headers={"Content-Type": "application/json"})
    api.error(r, 400, "invalid_request")


def test_malformed_json_on_a_tool_is_invalid_request(api, job):
    r = api.request(
        "POST",
        f"/v1/jobs/{job['id']}/tools/read_file",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    api.error(r, 400, "invalid_request")


def test_json_that_is_not_an_object_is_invalid_request(api, job):
    api.error(api.post(f"/v1/jobs/{job['id']}/tools/read_file", ["README.md"]), 400, "invalid_request")


def test_wrong_types_are_invalid_request(api, job):
    r = api.post(f"/v1/jobs/{job['id']}/tools/read_file", {"path": "README.md", "start_line": "one"})
    err = api.error(r, 400, "invalid_request")
    assert "start_line" in err["message"] + str(err["details"])


def test_unknown_field_is_invalid_request(api, job, fixture_repo):
    r = api.post(f"/v1/jobs/{job['id']}/tools/read_file", {"path": "README.md", "encoding": "latin-1"})
    api.error(r, 400, "invalid_request")
    r = api.post("/v1/jobs", {"clone_url": fixture_repo.url, "privileged": True})
    api.error(r, 400, "invalid_request")


def test_unknown_route_is_json_404(api):
    r = api.get("/v1/no-such-route")
    api.error(r, 404)
    assert "<html" not in r.text.lower()


def test_unknown_tool_is_json_404(api, job):
    api.error(api.post(f"/v1/jobs/{job['id']}/tools/rm_rf", {"path": "."}), 404)


def test_wrong_method_is_json_405(api):
    r = api.request("PUT", "/v1/jobs", json={})
    api.error(r, 405)
    assert "<html" not in r.text.lower()


def test_wrong_method_on_a_tool_is_json_405(api, job):
    api.error(api.get(f"/v1/jobs/{job['id']}/tools/read_file"), 405)


# --- images ---------------------------------------------------------------------------------------


def test_images_lists_base_image_and_generic_language(api, docker_client):
    r = api.get("/v1/images")
    assert r.status_code == 200, r.text
    got = r.json()
    images = {i["name"]: i for i in got["images"]}
    assert "base" in images
    assert images["base"]["tag"].startswith("dockyard/base:")
    assert images["base"]["present"] is True
    docker_client.images.get(images["base"]["tag"])  # the tag it names is really built
    languages = {lang["name"]: lang for lang in got["languages"]}
    assert "generic" in languages
    assert languages["generic"]["image"] in ("base", images["base"]["tag"])
    assert got["default_language"] == "generic"


def test_images_is_not_for_auditors(auditor_api):
    auditor_api.error(auditor_api.get("/v1/images"), 403, "forbidden")
