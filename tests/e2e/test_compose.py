"""End to end through compose: `docker-compose up --build -d` starts the service from the root
Dockerfile (base image debian:bookworm-slim here, python3 from apt), state on a named volume, the
images config mounted, the host's Docker socket mounted. A job is created from a bare repository
bind-mounted into the service container, worked on, audited, deleted; the service container is
restarted and its state is still there. The job's sandbox runs on the host engine beside it.
The API tokens and the audit key reach the service as compose secrets (files under /run/secrets):
neither is anywhere in `docker inspect` of the service container."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import docker.errors
import pytest
import requests
from pytest_docker.plugin import Services

pytestmark = [pytest.mark.docker, pytest.mark.timeout(600)]


class Client:
    def __init__(self, base: str, token: str):
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kw: Any) -> requests.Response:
        return self.session.request(method, self.base + path, timeout=120, **kw)


def _up(base: str) -> bool:
    try:
        return requests.get(base + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def stack(docker_services: Services, e2e_env: dict[str, Any]) -> Iterator[dict[str, Any]]:
    base = f"http://127.0.0.1:{e2e_env['port']}"
    docker_services.wait_until_responsive(check=lambda: _up(base), timeout=90, pause=0.5)
    yield {"base": base, **e2e_env}


def compose(docker_compose_file: list[str], project: str, *args: str) -> None:
    files = [a for f in docker_compose_file for a in ("-f", f)]
    subprocess.run(
        ["docker-compose", *files, "-p", project, *args], check=True, capture_output=True, timeout=180
    )


def test_a_job_through_the_compose_stack(
    stack: dict[str, Any],
    docker_client: Any,
    docker_compose_file: list[str],
    docker_compose_project_name: str,
) -> None:
    base = stack["base"]
    bot = Client(base, stack["tokens"]["bot"])
    auditor = Client(base, stack["tokens"]["auditor"])
    ready = requests.get(base + "/readyz", timeout=30)
    assert ready.status_code == 200, ready.text  # the engine through the mounted socket, images found

    # Secrets are files: the container is told where they are, never what they are.
    project = docker_compose_project_name
    labels = [f"com.docker.compose.project={project}", "com.docker.compose.service=dockyard"]
    [service] = docker_client.containers.list(filters={"label": labels})
    inspected = json.dumps(service.attrs)
    for secret in [*stack["tokens"].values(), stack["audit_key"]]:
        assert secret not in inspected, "a secret value is visible in docker inspect"
    env = dict(e.partition("=")[::2] for e in service.attrs["Config"]["Env"])
    assert env["DOCKYARD_API_TOKENS_FILE"] == "/run/secrets/dockyard_api_tokens"
    assert "DOCKYARD_API_TOKENS" not in env and "DOCKYARD_GITHUB_APP_PRIVATE_KEY" not in env

    r = bot("POST", "/v1/jobs", json={"clone_url": stack["clone_url"], "ref": "main", "language": "generic"})
    assert r.status_code == 201, r.text
    job = r.json()
    try:
        assert job["status"] == "ready"
        box = docker_client.containers.get(job["container_id"])  # a sibling on the host engine
        assert box.status == "running" and box.attrs["HostConfig"]["NetworkMode"] == "none"

        read = bot("POST", f"/v1/jobs/{job['id']}/tools/read_file", json={"path": "README.md"})
        assert read.status_code == 200 and read.json()["content"].startswith("# fixture"), read.text
        wrote = bot(
            "POST", f"/v1/jobs/{job['id']}/tools/write_file", json={"path": "e2e.txt", "content": "hi\n"}
        )
        assert wrote.status_code == 200, wrote.text
        diff = bot("GET", f"/v1/jobs/{job['id']}/diff")
        assert diff.status_code == 200 and [f["path"] for f in diff.json()["files"]] == ["e2e.txt"]

        metrics = requests.get(base + "/metrics", timeout=10).text
        assert 'dockyard_tool_duration_seconds_count{tool="read_file"} 1.0' in metrics

        assert bot("DELETE", f"/v1/jobs/{job['id']}").status_code == 204
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(job["container_id"])

        actions = [
            x["action"] for x in auditor("GET", "/v1/audit", params={"job_id": job["id"]}).json()["records"]
        ]
        # the second diff: the service keeps the final diff before the box goes
        assert actions == [
            "clone", "job.create", "tool.read_file", "tool.write_file", "diff", "diff", "job.delete"
        ]
        verified = auditor("GET", "/v1/audit/verify").json()
        assert verified["ok"] is True and verified["keyed"] is True  # the audit key file was read

        # The state is on the named volume: a restarted container still has it.
        compose(docker_compose_file, docker_compose_project_name, "restart", "dockyard")
        deadline = time.monotonic() + 60
        while not _up(base):
            assert time.monotonic() < deadline, "the service did not come back after a restart"
            time.sleep(0.5)
        assert bot("GET", f"/v1/jobs/{job['id']}").json()["status"] == "destroyed"
        again = auditor("GET", "/v1/audit/verify").json()
        assert again["ok"] is True and again["records"] == verified["records"]
    finally:
        with contextlib.suppress(Exception):
            bot("DELETE", f"/v1/jobs/{job['id']}")
        for name in (f"dockyard-{job['id']}",):
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.containers.get(name).remove(force=True)
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.volumes.get(name).remove(force=True)
