"""pytest-docker wiring for the compose end-to-end test.

Debian ships docker-compose 1.29 (no Compose v2), so the command is `docker-compose` and the set-up
is `up --build -d` (1.29 has no `--wait`; the test polls /healthz itself). The stack lives for
this folder's module only, not the whole session. Compose reads its variables (port, base image,
the fixture repository, the folder of secret files) from this process's environment, set here for
the module. The secrets (API tokens, the audit key) are files, as compose.yaml wants them: written
to a temp folder (DOCKYARD_SECRETS_DIR), readable by the service's uid only.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_docker.plugin import Services, get_docker_services

from tests.conftest import REPO_ROOT, FixtureRepo

EXTRA_CA = REPO_ROOT / "dockyard-extra-ca.crt"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (bash scripts/setup.sh installs it on Debian)")
    return "docker-compose"


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up --build -d"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -v --remove-orphans"]


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"dockyard-e2e-{os.getpid()}"


@pytest.fixture(scope="module")
def e2e_env(tmp_path_factory: pytest.TempPathFactory, fixture_repo: FixtureRepo) -> Iterator[dict[str, Any]]:
    git_root = tmp_path_factory.mktemp("e2e-git")
    bare = git_root / "hello.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(fixture_repo.path), str(bare)], check=True)
    if os.geteuid() == 0:  # the service runs as uid 10001 in its container; git wants the owner
        for p in [git_root, *git_root.rglob("*")]:
            os.chown(p, 10001, 10001, follow_symlinks=False)
    # pip in the image build may have to trust an intercepting proxy (builder stage only).
    if not EXTRA_CA.exists():
        ca = os.environ.get("DOCKYARD_BUILD_EXTRA_CA") or "/etc/ssl/certs/ca-certificates.crt"
        if Path(ca).is_file():
            shutil.copyfile(ca, EXTRA_CA)
    tokens = {"bot": "bot-" + secrets.token_hex(16), "auditor": "aud-" + secrets.token_hex(16)}
    audit_key = secrets.token_hex(32)
    secret_dir = tmp_path_factory.mktemp("e2e-secrets")
    (secret_dir / "api_tokens").write_text("".join(f"{t}:{role}\n" for role, t in tokens.items()))
    (secret_dir / "audit_key").write_text(audit_key + "\n")
    for f in (secret_dir / "api_tokens", secret_dir / "audit_key"):
        if os.geteuid() == 0:  # the service's uid in its container (compose keeps owner and mode)
            os.chown(f, 10001, 10001)
        f.chmod(0o400)
    env = {
        "DOCKYARD_PORT": str(_free_port()),
        "DOCKYARD_SECRETS_DIR": str(secret_dir),
        "DOCKYARD_E2E_GIT": str(git_root),
        # No registry here: build FROM the local debian:bookworm-slim (python3 comes from apt).
        "DOCKYARD_SERVICE_BASE_IMAGE": os.environ.get("DOCKYARD_E2E_BASE_IMAGE", "debian:bookworm-slim"),
    }
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    mp.delenv("DOCKYARD_API_TOKENS", raising=False)
    try:
        yield {
            "port": int(env["DOCKYARD_PORT"]),
            "tokens": tokens,
            "audit_key": audit_key,
            "clone_url": "file:///srv/git/hello.git",
        }
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def docker_compose_file(e2e_env: dict[str, Any]) -> list[str]:
    return [str(REPO_ROOT / "compose.yaml"), str(Path(__file__).parent / "compose.e2e.yaml")]


@pytest.fixture(scope="module")
def docker_services(
    docker_compose_command: str,
    docker_compose_file: list[str],
    docker_compose_project_name: str,
    docker_setup: list[str],
    docker_cleanup: list[str],
) -> Iterator[Services]:
    """pytest-docker's fixture, for this module only (the stack goes down when the module ends)."""
    with get_docker_services(
        docker_compose_command, docker_compose_file, docker_compose_project_name, docker_setup, docker_cleanup
    ) as services:
        yield services
