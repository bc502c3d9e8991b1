"""A second dockyard service for tests that restart, crash or starve it (own state dir, own
`dockyard.instance` label, so the session's service and its jobs are never touched)."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker.errors

from tests.conftest import Api, FixtureRepo, JobFactory, Service
from tests.fakes.github import FakeGitHub, github_env


class AuxService(Service):
    """The session's Service class with extra environment (a fast reaper, a job cap, an engine)."""

    def __init__(self, root: Path, **extra_env: str):
        (root / "state").mkdir(parents=True, exist_ok=True)
        super().__init__(root / "state", root)
        self.extra_env = {"DOCKYARD_REAP_INTERVAL_S": "0.5", **extra_env}

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.extra_env}

    def kill9(self) -> None:
        proc, self.proc = self.proc, None
        assert proc is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.state_dir / "dockyard.sqlite3", timeout=10)

    def instance(self) -> str:
        return (self.state_dir / "instance").read_text().strip()


@contextlib.contextmanager
def aux(
    tmp_path: Path, fixture_repo: FixtureRepo, docker_client: Any, **env: str
) -> Iterator[tuple[AuxService, Api, JobFactory]]:
    svc = AuxService(tmp_path, **env)
    svc.start()
    api = Api(svc, svc.tokens["bot"])
    factory = JobFactory(api, fixture_repo, docker_client)
    try:
        yield svc, api, factory
    finally:
        if not svc.running:
            with contextlib.suppress(BaseException):
                svc.start()
        factory.cleanup()
        svc.discard()


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def gone(docker_client: Any, name: str) -> bool:
    for getter in (docker_client.containers.get, docker_client.volumes.get):
        try:
            getter(name)
            return False
        except docker.errors.NotFound:
            continue
    return True


def audit(api_: Api, **params: Any) -> list[dict[str, Any]]:
    auditor = Api(api_.service, api_.service.tokens["auditor"])
    r = auditor.get("/v1/audit", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text[:500]
    return r.json()["records"]  # type: ignore[no-any-return]


def verify(api_: Api) -> dict[str, Any]:
    auditor = Api(api_.service, api_.service.tokens["auditor"])
    r = auditor.get("/v1/audit/verify")
    assert r.status_code == 200, r.text[:500]
    return r.json()  # type: ignore[no-any-return]


@contextlib.contextmanager
def github_service(root: Path, fake: FakeGitHub) -> Iterator[AuxService]:
    """A started service wired to the fake GitHub, with fast retries and CI polling."""
    svc = AuxService(
        root,
        **github_env(fake),
        DOCKYARD_GITHUB_RETRY_BASE_S="0.05",
        DOCKYARD_GITHUB_NO_CI_GRACE_S="1.5",
        DOCKYARD_GITHUB_POLL_INTERVAL_S="0.2",
    )
    svc.start()
    try:
        yield svc
    finally:
        svc.discard()
