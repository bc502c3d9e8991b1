"""Shared fixtures: the dockyard service as a real subprocess, HTTP clients, a fixture git
repository, job factories and docker inspection helpers.

Everything here is lazy: a unit test that asks for none of these fixtures starts nothing.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

pytest_plugins = ["tests.fakes.fixtures"]

REPO_ROOT = Path(__file__).resolve().parent.parent
HTTP_TIMEOUT = 180.0
START_TIMEOUT_S = 20.0
ERROR_CODE_RE = re.compile(r"^[a-z][a-z0-9_]*$")


# --- the service process ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """`python -m service serve` on a temporary state dir; restartable on the same state dir.

    `clone_file_roots`: the file:// clone roots the service allows (DOCKYARD_CLONE_FILE_ROOTS),
    the session's pytest temp root (fixture repositories live there; the state dir, also in it,
    stays refused by the service)."""

    clone_file_roots: tuple[Path, ...] = ()

    def __init__(self, state_dir: Path, log_dir: Path):
        self.state_dir = state_dir
        self.log_dir = log_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tokens = {
            "bot": "bot-" + secrets.token_hex(16),
            "auditor": "aud-" + secrets.token_hex(16),
            "admin": "adm-" + secrets.token_hex(16),
            "bot_same": "bs-" + secrets.token_hex(16),  # another token of the bot's tenant
            "bot_other": "bo-" + secrets.token_hex(16),  # a bot of another tenant
        }
        # name -> role[:tenant] in DOCKYARD_API_TOKENS
        self.grants = {
            "bot": "bot:team-a",
            "auditor": "auditor",
            "admin": "admin",
            "bot_same": "bot:team-a",
            "bot_other": "bot:team-b",
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.stderr_path: Path | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DOCKYARD_API_TOKENS=",".join(f"{tok}:{self.grants[name]}" for name, tok in self.tokens.items()),
            # Test jobs use little of their caps and one tenant makes them all: admission is
            # tested on its own (tests/integration/test_tenants.py), not by every test.
            DOCKYARD_HOST_BUDGET_MB="1000000",
            DOCKYARD_TENANT_MAX_JOBS="64",
            DOCKYARD_STATE_DIR=str(self.state_dir),
            DOCKYARD_PORT=str(self.port),
            DOCKYARD_HOST="127.0.0.1",
            DOCKYARD_CLONE_FILE_ROOTS=",".join(str(p) for p in self.clone_file_roots),
            PYTHONUNBUFFERED="1",
        )
        return env

    def _tail(self, n: int = 60) -> str:
        if self.stderr_path is None or not self.stderr_path.exists():
            return "(no stderr captured)"
        lines = self.stderr_path.read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "service already running"
        self.starts += 1
        self.stderr_path = self.log_dir / f"service-stderr-{self.starts}.log"
        stdout_path = self.log_dir / f"service-stdout-{self.starts}.log"
        with self.stderr_path.open("wb") as err, stdout_path.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "service", "serve"],
                cwd=REPO_ROOT,
                env=self.env(),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"dockyard service exited with {self.proc.returncode} during start-up; "
                    f"stderr tail ({self.stderr_path}):\n{self._tail()}",
                    pytrace=False,
                )
            try:
                r = requests.get(f"{self.url}/healthz", timeout=2)
                if r.status_code == 200:
                    return
                last = f"{r.status_code} {r.text[:200]}"
            except requests.RequestException as e:
                last = repr(e)
            time.sleep(0.2)
        self.stop()
        pytest.fail(
            f"dockyard service did not answer /healthz with 200 within {START_TIMEOUT_S:.0f} s "
            f"(last: {last}); stderr tail ({self.stderr_path}):\n{self._tail()}",
            pytrace=False,
        )

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def discard(self) -> None:
        """Stop for good and remove what outlives a service by design: its cached dependency
        environments (volumes kept for its next start) — this state dir is thrown away."""
        self.stop()
        instance_file = self.state_dir / "instance"
        if not instance_file.exists():
            return
        import docker

        client = docker.from_env(timeout=60)
        label = f"dockyard.env.instance={instance_file.read_text().strip()}"
        for container in client.containers.list(all=True, filters={"label": label}):
            with contextlib.suppress(Exception):
                container.remove(force=True)
        for volume in client.volumes.list(filters={"label": label}):
            with contextlib.suppress(Exception):
                volume.remove(force=True)
        for network in client.networks.list(filters={"label": label}):
            with contextlib.suppress(Exception):
                network.remove()

    def restart(self) -> None:
        """Stop (SIGTERM) and start again on the same port and state dir."""
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _docker_available() -> str | None:
    try:
        import docker

        docker.from_env(timeout=10).ping()
        return None
    except Exception as e:
        return repr(e)


@pytest.fixture(scope="session", autouse=True)
def _clone_file_roots(tmp_path_factory: pytest.TempPathFactory) -> None:
    Service.clone_file_roots = (tmp_path_factory.getbasetemp(),)


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    problem = _docker_available()
    if problem is not None:
        pytest.fail(
            f"the Docker engine does not answer ({problem}); run `bash scripts/setup.sh` once", pytrace=False
        )
    svc = Service(tmp_path_factory.mktemp("dockyard-state"), tmp_path_factory.mktemp("dockyard-logs"))
    svc.start()
    try:
        yield svc
    finally:
        svc.discard()


# --- HTTP clients -------------------------------------------------------------------------------


class Api:
    """A `requests` client bound to the service (follows it across restarts) and one token."""

    def __init__(self, service: Service, token: str | None):
        self.service = service
        self.token = token
        self.session = requests.Session()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
        timeout: float = HTTP_TIMEOUT,
    ) -> requests.Response:
        h = dict(headers or {})
        if self.token is not None and "Authorization" not in h:
            h["Authorization"] = f"Bearer {self.token}"
        return self.session.request(
            method, self.service.url + path, json=json, data=data, headers=h, params=params, timeout=timeout
        )

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.request("POST", path, json=body, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    # tools
    def tool(self, job_id: str, name: str, **body: Any) -> requests.Response:
        return self.post(f"/v1/jobs/{job_id}/tools/{name}", body)

    def tool_ok(self, job_id: str, name: str, **body: Any) -> dict[str, Any]:
        r = self.tool(job_id, name, **body)
        assert r.status_code == 200, f"{name} {body!r:.300} -> {r.status_code} {r.text[:1000]}"
        return r.json()  # type: ignore[no-any-return]

    def read(self, job_id: str, path: str, **body: Any) -> dict[str, Any]:
        return self.tool_ok(job_id, "read_file", path=path, **body)

    def write(self, job_id: str, path: str, content: str) -> dict[str, Any]:
        return self.tool_ok(job_id, "write_file", path=path, content=content)

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, f"GET job {job_id} -> {r.status_code} {r.text[:500]}"
        return r.json()  # type: ignore[no-any-return]

    @staticmethod
    def error(
        resp: requests.Response, status: int | tuple[int, ...], code: str | None = None
    ) -> dict[str, Any]:
        """Assert `resp` is a contract error: status, JSON `{"error": {code, message, details}}`."""
        statuses = (status,) if isinstance(status, int) else status
        assert resp.status_code in statuses, (
            f"expected HTTP {status}{f' {code}' if code else ''}, got {resp.status_code}: {resp.text[:800]}"
        )
        ctype = resp.headers.get("Content-Type", "")
        assert ctype.startswith("application/json"), f"error is not JSON ({ctype!r}): {resp.text[:300]}"
        body = resp.json()
        assert isinstance(body, dict) and set(body) == {"error"}, (
            f"not the contract error shape: {body!r:.500}"
        )
        err = body["error"]
        assert isinstance(err, dict), err
        assert isinstance(err.get("code"), str) and ERROR_CODE_RE.match(err["code"]), err
        assert isinstance(err.get("message"), str) and err["message"].strip(), err
        assert isinstance(err.get("details"), dict), err
        if code is not None:
            assert err["code"] == code, f"expected code {code!r}, got {err!r}"
        return err  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def api(service: Service) -> Api:
    return Api(service, service.tokens["bot"])


@pytest.fixture(scope="session")
def auditor_api(service: Service) -> Api:
    return Api(service, service.tokens["auditor"])


@pytest.fixture(scope="session")
def admin_api(service: Service) -> Api:
    return Api(service, service.tokens["admin"])


@pytest.fixture(scope="session")
def anon_api(service: Service) -> Api:
    return Api(service, None)


# --- the fixture repository ---------------------------------------------------------------------

BIG_LINES = 12_000


def _big_file() -> bytes:
    line = "{:07d} the quick brown fox jumps over the lazy dog\n"
    return b"".join(line.format(i).encode() for i in range(1, BIG_LINES + 1))


UNICODE_PATH = "\u00fcn\u00ef/c\u00f6d\u00e9.py"  # ünï/cödé.py
FIXTURE_FILES: dict[str, bytes] = {
    "README.md": b"# fixture\n\nhello dockyard\nsecond paragraph line\n",
    "crlf.txt": b"a\r\nb\r\n",
    UNICODE_PATH: "# -*- coding: utf-8 -*-\ngreeting = 'Gr\u00fc\u00dfe, \u4e16\u754c \U0001f680'\n".encode(),
    "bin/blob.bin": bytes(range(256)) + b"\x00\x00tail\x00",
    "scripts/run.sh": b"#!/bin/sh\necho running\n",
    "src/app.py": (
        b"import os\n"
        b"\n"
        b"\n"
        b"def foo(x):\n"
        b"    return x + 1\n"
        b"\n"
        b"\n"
        b"def bar():\n"
        b"    value = a.b(1)  # literal call\n"
        b"    other = axb(2)\n"
        b"    return value\n"
    ),
    "src/util/helpers.py": b"def helper():\n    return 'Hello World'\n",
    "a/b/c/deep.txt": b"deep content\n",
    "a/b/sibling.md": b"sibling\n",
    "tabs.txt": b"col1\tcol2\n\tindented\tvalue",
    "case.txt": b"Hello\nHELLO\nhello\nhElLo there\n",
    "needles/n1.txt": b"".join(b"needle %d\n" % i for i in range(10)),
    "needles/n2.txt": b"".join(b"needle %d\n" % i for i in range(10)),
    "needles/n3.txt": b"".join(b"needle %d\n" % i for i in range(10)),
    "big.txt": _big_file(),
}
EXECUTABLES = {"scripts/run.sh"}
SYMLINKS = {"link_in": "src/app.py", "link_out": "/etc/passwd", "dir_out": "/etc"}
SECOND_COMMIT_FILE = ("later.txt", b"added in the second commit\n")


@dataclass
class FixtureRepo:
    path: Path
    sha: str  # main
    first_sha: str  # tag v0
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.path.as_uri()

    def text(self, path: str) -> str:
        return self.files[path].decode()


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=Dockyard Tests", "-c", "user.email=tests@dockyard.invalid",
         "-c", "core.autocrlf=false", "-c", "init.defaultBranch=main", *args],
        cwd=repo, check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="session")
def fixture_repo(tmp_path_factory: pytest.TempPathFactory) -> FixtureRepo:
    root = tmp_path_factory.mktemp("fixture-repo") / "hello"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    for rel, data in FIXTURE_FILES.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, 0o755 if rel in EXECUTABLES else 0o644)
    for rel, target in SYMLINKS.items():
        os.symlink(target, root / rel)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "fixture: first commit")
    first = _git(root, "rev-parse", "HEAD")
    _git(root, "tag", "v0")
    name, data = SECOND_COMMIT_FILE
    (root / name).write_bytes(data)
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "fixture: second commit")
    sha = _git(root, "rev-parse", "main")
    files = dict(FIXTURE_FILES)
    files[name] = data
    return FixtureRepo(path=root, sha=sha, first_sha=first, files=files)


# --- docker inspection ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client() -> Any:
    import docker

    return docker.from_env(timeout=120)


class Exec:
    """`docker exec` into a job's container (as the container's own user unless told)."""

    def __init__(self, client: Any):
        self.client = client

    def __call__(self, job: dict[str, Any], cmd: str | list[str], user: str = "") -> tuple[int, str]:
        container = self.client.containers.get(job["container_id"])
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else cmd
        code, out = container.exec_run(argv, user=user, demux=False)
        return int(code), (out or b"").decode(errors="replace")

    def ok(self, job: dict[str, Any], cmd: str | list[str]) -> str:
        code, out = self(job, cmd)
        assert code == 0, f"docker exec {cmd!r} -> {code}: {out[:500]}"
        return out


@pytest.fixture(scope="session")
def dexec(docker_client: Any) -> Exec:
    return Exec(docker_client)


# --- jobs -----------------------------------------------------------------------------------------


class JobFactory:
    """Creates jobs through the API and deletes every one it made (also from docker, as a safety net)."""

    def __init__(self, api: Api, repo: FixtureRepo, docker_client: Any):
        self.api = api
        self.repo = repo
        self.docker = docker_client
        self.ids: list[str] = []

    def body(self, **overrides: Any) -> dict[str, Any]:
        # generic: the base image, so the suite does not depend on which language images are built
        body: dict[str, Any] = {"clone_url": self.repo.url, "ref": "main", "language": "generic"}
        body.update(overrides)
        return body

    def raw(self, body: dict[str, Any]) -> requests.Response:
        r = self.api.post("/v1/jobs", body)
        if r.status_code == 201:
            with contextlib.suppress(Exception):
                self.ids.append(r.json()["id"])
        return r

    def __call__(self, **overrides: Any) -> dict[str, Any]:
        r = self.raw(self.body(**overrides))
        assert r.status_code == 201, f"POST /v1/jobs -> {r.status_code}: {r.text[:1500]}"
        job = r.json()
        assert job["status"] == "ready", job
        return job  # type: ignore[no-any-return]

    def cleanup(self) -> None:
        for job_id in self.ids:
            with contextlib.suppress(Exception):
                if self.api.service.running:
                    self.api.delete(f"/v1/jobs/{job_id}", timeout=60)
            name = f"dockyard-{job_id}"
            with contextlib.suppress(Exception):
                self.docker.containers.get(name).remove(force=True)
            with contextlib.suppress(Exception):
                self.docker.volumes.get(name).remove(force=True)
        self.ids.clear()


@pytest.fixture(scope="module")
def make_job(api: Api, fixture_repo: FixtureRepo, docker_client: Any) -> Iterator[JobFactory]:
    factory = JobFactory(api, fixture_repo, docker_client)
    try:
        yield factory
    finally:
        factory.cleanup()


@pytest.fixture(scope="module")
def job(make_job: JobFactory) -> dict[str, Any]:
    """One ready job on the fixture repository, shared by a module's tests."""
    return make_job()


@pytest.fixture(scope="session")
def unique() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{prefix}-{secrets.token_hex(4)}"

    return make
