"""Jobs: create, get, list, delete, limits, labels, and the errors a caller can run into."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import docker.errors
import pytest

pytestmark = pytest.mark.docker

HEX40 = re.compile(r"^[0-9a-f]{40}$")


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _gone(docker_client, name: str) -> tuple[bool, bool]:
    try:
        docker_client.containers.get(name)
        container_gone = False
    except docker.errors.NotFound:
        container_gone = True
    try:
        docker_client.volumes.get(name)
        volume_gone = False
    except docker.errors.NotFound:
        volume_gone = True
    return container_gone, volume_gone


def test_create_returns_a_ready_job_at_the_repo_head(job, fixture_repo, docker_client):
    assert job["status"] == "ready"
    assert job["id"]
    assert HEX40.match(job["base_sha"]), job["base_sha"]
    assert job["base_sha"] == fixture_repo.sha
    assert job["error"] is None
    assert job["commits"] == []
    assert job["language"] == "generic"
    assert job["image"].startswith("dockyard/base:")
    assert set(job["limits"]) >= {"memory_mb", "cpus", "pids", "disk_mb", "tool_timeout_s"}
    assert job["limits"]["memory_mb"] == 1024 and job["limits"]["disk_mb"] == 2048  # the configured defaults
    container = docker_client.containers.get(f"dockyard-{job['id']}")
    assert container.id == job["container_id"] or container.id.startswith(job["container_id"])
    assert container.status == "running"
    docker_client.volumes.get(f"dockyard-{job['id']}")  # the workspace volume exists


def test_created_job_holds_the_cloned_files(api, job, fixture_repo):
    got = api.read(job["id"], "later.txt")
    assert got["content"] == fixture_repo.text("later.txt")


def test_create_at_a_tag_checks_out_that_commit(api, make_job, fixture_repo):
    job = make_job(ref="v0")
    assert job["base_sha"] == fixture_repo.first_sha
    api.error(api.tool(job["id"], "read_file", path="later.txt"), 404, "file_not_found")


def test_language_is_detected_from_the_repo_files(api, make_job):
    images = api.get("/v1/images").json()
    langs = {lang["name"]: lang for lang in images["languages"]}
    if "python" not in langs:
        pytest.skip("no python language configured")
    present = {i["tag"] for i in images["images"] if i["present"]}
    r = make_job.raw(make_job.body(language=None))
    if langs["python"]["image"] not in present and not any(
        i["name"] == langs["python"]["image"] and i["present"] for i in images["images"]
    ):
        api.error(r, 503, "image_missing")
        return
    assert r.status_code == 201, r.text
    assert r.json()["language"] == "python"  # 4 .py files beat 1 .sh file


def test_create_at_a_commit_sha(make_job, fixture_repo):
    job = make_job(ref=fixture_repo.first_sha)
    assert job["base_sha"] == fixture_repo.first_sha


def test_create_without_ref_uses_the_default_branch(make_job, fixture_repo):
    job = make_job(ref=None)
    assert job["base_sha"] == fixture_repo.sha


def test_create_sets_expiry_from_ttl(make_job):
    job = make_job(ttl_s=600)
    created, expires = _parse_time(job["created_at"]), _parse_time(job["expires_at"])
    assert created.tzinfo is not None and expires.tzinfo is not None
    assert abs((expires - created) - timedelta(seconds=600)) < timedelta(seconds=30)


def test_get_one_job(api, job):
    got = api.job(job["id"])
    assert got["id"] == job["id"]
    assert got["status"] == "ready"
    assert got["base_sha"] == job["base_sha"]
    assert got["container_id"] == job["container_id"]
    assert got["limits"] == job["limits"]


def test_auditor_can_get_and_list_jobs(auditor_api, job):
    r = auditor_api.get(f"/v1/jobs/{job['id']}")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == job["id"]
    r = auditor_api.get("/v1/jobs")
    assert r.status_code == 200, r.text
    assert job["id"] in [j["id"] for j in r.json()["jobs"]]


def test_list_is_newest_first(api, make_job):
    first = make_job()
    second = make_job()
    r = api.get("/v1/jobs")
    assert r.status_code == 200, r.text
    jobs = r.json()["jobs"]
    ids = [j["id"] for j in jobs]
    assert ids.index(second["id"]) < ids.index(first["id"])
    created = [_parse_time(j["created_at"]) for j in jobs]
    assert created == sorted(created, reverse=True)


def test_list_filters_by_status(api, make_job):
    live = make_job()
    dead = make_job()
    assert api.delete(f"/v1/jobs/{dead['id']}").status_code == 204
    r = api.get("/v1/jobs", params={"status": "ready"})
    assert r.status_code == 200, r.text
    jobs = r.json()["jobs"]
    assert jobs and all(j["status"] == "ready" for j in jobs)
    ids = {j["id"] for j in jobs}
    assert live["id"] in ids and dead["id"] not in ids
    r = api.get("/v1/jobs", params={"status": "destroyed"})
    assert r.status_code == 200, r.text
    ids = {j["id"] for j in r.json()["jobs"]}
    assert dead["id"] in ids and live["id"] not in ids


def test_list_filters_by_label(api, make_job, unique):
    value = unique("bug")
    tagged = make_job(labels={"bug": value, "team": "core"})
    other = make_job(labels={"bug": unique("other")})
    r = api.get("/v1/jobs", params={"label": f"bug:{value}"})
    assert r.status_code == 200, r.text
    assert [j["id"] for j in r.json()["jobs"]] == [tagged["id"]]
    assert r.json()["jobs"][0]["labels"] == {"bug": value, "team": "core"}
    r = api.get("/v1/jobs", params={"label": "bug:no-such-value-anywhere"})
    assert r.status_code == 200, r.text
    assert r.json()["jobs"] == []
    assert other["id"]  # created, just not matching


def test_caller_labels_and_dockyard_labels_are_on_the_container(make_job, docker_client, unique):
    value = unique("BUG")
    job = make_job(labels={"bug": value, "owner/team": "infra"})
    assert job["labels"] == {"bug": value, "owner/team": "infra"}
    labels = docker_client.containers.get(job["container_id"]).labels
    assert labels["bug"] == value
    assert labels["owner/team"] == "infra"
    assert labels["dockyard.job"] == job["id"]
    assert labels["dockyard.managed"] == "true"
    expires = _parse_time(labels["dockyard.expires"])
    assert expires.tzinfo is not None
    assert abs(expires - _parse_time(job["expires_at"])) < timedelta(seconds=2)


def test_reserved_label_prefix_is_refused(api, make_job):
    r = make_job.raw(make_job.body(labels={"dockyard.job": "spoofed"}))
    api.error(r, 400, "invalid_request")


def test_limits_are_clamped_to_the_maxima(make_job, docker_client):
    job = make_job(limits={"memory_mb": 999_999, "cpus": 64, "pids": 1_000_000})
    assert job["limits"]["memory_mb"] == 8192
    assert job["limits"]["cpus"] == 2.0
    assert job["limits"]["pids"] == 1024
    hc = docker_client.api.inspect_container(job["container_id"])["HostConfig"]
    # the box's cgroup also holds its tmpfs mounts: memory_mb + disk_mb + tmp_mb (64)
    box_mb = 8192 + job["limits"]["disk_mb"] + 64
    assert hc["Memory"] == box_mb * 1024 * 1024
    assert hc["MemorySwap"] == box_mb * 1024 * 1024
    assert hc["NanoCpus"] == 2_000_000_000
    assert hc["PidsLimit"] == 1024


def test_limits_below_the_maxima_are_applied_as_asked(make_job, docker_client):
    job = make_job(limits={"memory_mb": 256, "cpus": 0.5, "pids": 64})
    assert job["limits"]["memory_mb"] == 256
    assert job["limits"]["cpus"] == 0.5
    assert job["limits"]["pids"] == 64
    hc = docker_client.api.inspect_container(job["container_id"])["HostConfig"]
    assert hc["Memory"] == (256 + job["limits"]["disk_mb"] + 64) * 1024 * 1024  # + the tmpfs mounts
    assert hc["NanoCpus"] == 500_000_000
    assert hc["PidsLimit"] == 64


def test_unknown_language_is_refused(api, make_job):
    r = make_job.raw(make_job.body(language="cobol-from-mars"))
    api.error(r, 400)


def test_nonexistent_clone_url_is_repo_not_found(api, make_job, tmp_path):
    r = make_job.raw(make_job.body(clone_url=(tmp_path / "no-such-repo").as_uri()))
    err = api.error(r, 404, "repo_not_found")
    assert len(err["message"]) > 10


def test_unknown_ref_is_ref_not_found(api, make_job):
    r = make_job.raw(make_job.body(ref="no-such-branch"))
    err = api.error(r, 404, "ref_not_found")
    assert "no-such-branch" in err["message"] + json.dumps(err["details"]), err


def test_both_repo_and_clone_url_is_refused(api, make_job):
    api.error(make_job.raw(make_job.body(repo="octo/hello")), 400, "invalid_request")


def test_neither_repo_nor_clone_url_is_refused(api, make_job):
    api.error(make_job.raw({"ref": "main"}), 400, "invalid_request")


def test_repo_without_github_app_is_refused(api, make_job):
    r = make_job.raw({"repo": "octo/hello", "ref": "main"})
    err = api.error(r, 400, "github_not_configured")
    assert "DOCKYARD_GITHUB_APP_ID" in err["message"]


def test_delete_removes_container_and_volume_and_keeps_the_record(api, make_job, docker_client):
    job = make_job()
    name = f"dockyard-{job['id']}"
    assert _gone(docker_client, name) == (False, False)
    r = api.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert _gone(docker_client, name) == (True, True)
    got = api.job(job["id"])
    assert got["status"] == "destroyed"
    r = api.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 204, r.text
    assert api.job(job["id"])["status"] == "destroyed"


def test_delete_unknown_job_is_404(api):
    api.error(api.delete("/v1/jobs/job_doesnotexist0000"), 404, "job_not_found")


def test_get_unknown_job_is_404(api):
    api.error(api.get("/v1/jobs/job_doesnotexist0000"), 404, "job_not_found")


def test_tool_on_a_deleted_job_is_job_not_ready(api, make_job):
    job = make_job()
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    api.error(api.tool(job["id"], "read_file", path="README.md"), 409, "job_not_ready")


def test_tool_on_an_unknown_job_is_404(api):
    api.error(api.tool("job_doesnotexist0000", "read_file", path="README.md"), 404, "job_not_found")


def test_container_removed_behind_the_service_makes_the_job_failed(api, make_job, docker_client):
    job = make_job()
    docker_client.containers.get(job["container_id"]).remove(force=True)
    api.error(api.tool(job["id"], "read_file", path="README.md"), 409, "job_not_ready")
    got = api.job(job["id"])
    assert got["status"] == "failed", got
    assert got["error"], got
    # deleting the failed job still cleans up what is left (the workspace volume)
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert _gone(docker_client, f"dockyard-{job['id']}") == (True, True)
    assert api.job(job["id"])["status"] == "destroyed"


def test_parallel_job_creation_all_succeed(api, make_job):
    with ThreadPoolExecutor(max_workers=4) as pool:
        responses = list(pool.map(lambda _: make_job.raw(make_job.body()), range(4)))
    assert [r.status_code for r in responses] == [201] * 4, [r.text[:300] for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 4
    for job_id in ids:
        assert api.job(job_id)["status"] == "ready"


def test_list_with_unknown_status_is_invalid_request(api):
    api.error(api.get("/v1/jobs", params={"status": "sleeping"}), 400, "invalid_request")


@pytest.mark.parametrize(
    "limits", [{"memory_mb": -1}, {"cpus": 0}, {"pids": "many"}, {"disk_mb": 16, "swap_mb": 1}]
)
def test_bad_limits_are_invalid_request(api, make_job, limits):
    api.error(make_job.raw(make_job.body(limits=limits)), 400, "invalid_request")


def test_job_answers_are_json(api, job):
    r = api.get(f"/v1/jobs/{job['id']}")
    assert r.headers["Content-Type"].startswith("application/json")
