"""A job survives a restart of the service: its record persists and its container is adopted."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


def test_job_survives_a_service_restart(api, make_job, service, docker_client):
    job = make_job(labels={"survives": "restart"})
    api.write(job["id"], "before_restart.txt", "written before the restart\n")
    destroyed = make_job()
    assert api.delete(f"/v1/jobs/{destroyed['id']}").status_code == 204

    service.restart()

    got = api.job(job["id"])
    assert got["status"] == "ready"
    assert got["container_id"] == job["container_id"]
    assert got["base_sha"] == job["base_sha"]
    assert got["labels"] == {"survives": "restart"}
    assert docker_client.containers.get(job["container_id"]).status == "running"
    assert api.read(job["id"], "before_restart.txt")["content"] == "written before the restart\n"
    assert api.read(job["id"], "crlf.txt")["content"] == "a\r\nb\r\n"
    assert api.job(destroyed["id"])["status"] == "destroyed"
    # the old service's helper ended with its channel; the new one opened exactly one
    _, out = docker_client.containers.get(job["container_id"]).exec_run(["sh", "-c", HELPERS])
    assert len(out.split()) == 1, out


HELPERS = (
    "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q '^dockyard-tool serve' "
    "&& echo ${p#/proc/}; done; true"
)


def test_job_whose_container_vanished_while_down_is_reaped(api, make_job, service, docker_client):
    job = make_job()
    service.stop()
    try:
        docker_client.containers.get(job["container_id"]).remove(force=True)
    finally:
        service.start()
    got = api.job(job["id"])
    assert got["status"] in ("failed", "destroyed"), got
    if got["status"] == "failed":
        assert got["error"]
    api.error(api.tool(job["id"], "read_file", path="README.md"), 409, "job_not_ready")
