"""Clone sources, hostile trees, credentials and `<state>/work`, through `POST /v1/jobs` on the real
engine: each refusal a clear 4xx, nothing left behind, no secret anywhere a user could read."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, Api, FixtureRepo, JobFactory, _git
from tests.fakes.github import FakeGitHub, github_env
from tests.integration.aux_service import AuxService, audit, wait_for

pytestmark = pytest.mark.docker

SECRET = "s3cr3t-" + os.urandom(6).hex()
USER = "clone-bot"


# --- hostile repositories (built with plumbing: git's porcelain refuses most of them) -----------


def _commit(repo: Path, tree: str) -> None:
    sha = _git(repo, "commit-tree", "-m", "hostile", tree)
    _git(repo, "update-ref", "refs/heads/main", sha)


def _blob(repo: Path, data: bytes = b"x\n") -> str:
    out = subprocess.run(
        ["git", "hash-object", "-w", "--stdin"], cwd=repo, input=data, check=True, capture_output=True
    )
    return out.stdout.decode().strip()


def _mktree(repo: Path, lines: list[str]) -> str:
    out = subprocess.run(
        ["git", "mktree"],
        cwd=repo,
        input="".join(f"{ln}\n" for ln in lines).encode(),
        check=True,
        capture_output=True,
    )
    return out.stdout.decode().strip()


def hostile_repo(root: Path, name: str, paths: dict[str, bytes]) -> Path:
    """A repository whose `main` holds exactly `paths` (any depth or length, via the index)."""
    repo = root / name
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    info = "".join(f"100644 {_blob(repo, data)}\t{path}\n" for path, data in paths.items())
    subprocess.run(
        ["git", "update-index", "--add", "--index-info"], cwd=repo, input=info.encode(), check=True
    )
    _commit(repo, _git(repo, "write-tree"))
    return repo


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile")
    repos = {
        "deep": hostile_repo(root, "deep", {"/".join(["d"] * 1100) + "/f.txt": b"deep\n"}),
        "long_name": hostile_repo(root, "long-name", {"n" * 300: b"x\n", "ok.txt": b"ok\n"}),
        "wide": hostile_repo(root, "wide", {f"w/f{i}.txt": b"" for i in range(30)}),
        "many": hostile_repo(root, "many", {f"d{i // 10}/f{i}.txt": b"" for i in range(250)}),
        "big": hostile_repo(root, "big", {"big.bin": os.urandom(3 * 1024 * 1024)}),
    }
    gitdir = root / "dotgit"
    gitdir.mkdir()
    _git(gitdir, "init", "-q", "-b", "main")
    blob = _blob(gitdir, b"[core]\n\thooksPath = /tmp/evil\n")
    inner = _mktree(gitdir, [f"100644 blob {blob}\tconfig"])
    _commit(gitdir, _mktree(gitdir, [f"040000 tree {inner}\t.GIT", f"100644 blob {_blob(gitdir)}\tREADME"]))
    repos["dotgit"] = gitdir
    up = root / "uplink"
    up.mkdir()
    _git(up, "init", "-q", "-b", "main")
    (up / "README").write_text("up\n")
    os.symlink("../", up / "up")
    _git(up, "add", "-A")
    _git(up, "commit", "-q", "-m", "a link out")
    repos["uplink"] = up
    return repos


def work_entries(state_dir: Path) -> list[str]:
    work = state_dir / "work"
    return sorted(os.listdir(work)) if work.is_dir() else []


# --- sources refused by the session's service ---------------------------------------------------


def test_file_url_outside_the_roots_is_forbidden(api: Api, make_job: JobFactory) -> None:
    # the repository's own checkout: a git repo on the host, outside the tests' temp root
    err = api.error(make_job.raw(make_job.body(clone_url=REPO_ROOT.as_uri())), 400, "clone_source_forbidden")
    assert "DOCKYARD_CLONE_FILE_ROOTS" in err["message"]


def test_the_state_dir_is_never_a_clone_source(api: Api, make_job: JobFactory, service: Any) -> None:
    trail = Path(service.state_dir) / "trail"
    for url in (
        trail.as_uri(),
        Path(service.state_dir).as_uri(),
        f"file://{service.state_dir}/work/../trail",
    ):
        err = api.error(make_job.raw(make_job.body(clone_url=url)), 400, "clone_source_forbidden")
        assert "state dir" in err["details"]["reason"]


def test_a_link_under_a_root_into_the_state_dir_is_forbidden(
    api: Api, make_job: JobFactory, service: Any, tmp_path: Path
) -> None:
    os.symlink(Path(service.state_dir), tmp_path / "sneaky")
    r = make_job.raw(make_job.body(clone_url=(tmp_path / "sneaky" / "trail").as_uri()))
    api.error(r, 400, "clone_source_forbidden")


def test_loopback_http_is_forbidden_unless_it_is_the_git_host(
    api: Api, make_job: JobFactory, fake_github: FakeGitHub, auditor_api: Api
) -> None:
    url = f"{fake_github.web_url}/{fake_github.owner}/nothing.git"
    err = api.error(make_job.raw(make_job.body(clone_url=url)), 400, "clone_source_forbidden")
    assert err["details"]["address_class"] == "loopback"
    # a refused source leaves a record of who tried it
    records = auditor_api.get("/v1/audit", params={"action": "job.create", "limit": 1000}).json()["records"]
    assert any(rec["outcome"] == "clone_source_forbidden" for rec in records)
    for other in ("http://localhost:9/x.git", "http://169.254.169.254/latest/meta-data/", "http://[::1]:9/x"):
        api.error(make_job.raw(make_job.body(clone_url=other)), 400, "clone_source_forbidden")


# --- hostile trees ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "code", "cap"),
    [
        ("deep", 413, "repo_too_large", "tree_depth"),
        ("long_name", 413, "repo_too_large", "name_length"),
        ("dotgit", 400, "invalid_request", None),
    ],
)
def test_hostile_trees_are_refused_before_checkout(
    api: Api,
    make_job: JobFactory,
    service: Any,
    hostile: dict[str, Path],
    name: str,
    status: int,
    code: str,
    cap: str | None,
) -> None:
    err = api.error(make_job.raw(make_job.body(clone_url=hostile[name].as_uri())), status, code)
    if cap is not None:
        assert err["details"]["cap"] == cap
        assert err["details"]["limit"] and "path" in err["details"]
    else:
        assert err["details"]["reason"] == "forbidden_path" and ".GIT" in err["details"]["path"]
    assert work_entries(Path(service.state_dir)) == [], "a refused clone left its checkout behind"


def test_a_link_pointing_out_of_the_repo_is_no_server_error(
    api: Api, make_job: JobFactory, dexec: Any, hostile: dict[str, Path], service: Any
) -> None:
    r = make_job.raw(make_job.body(clone_url=hostile["uplink"].as_uri()))
    assert r.status_code < 500, f"{r.status_code}: {r.text[:500]}"
    if r.status_code == 201:  # the link is kept as a link, in the box
        assert dexec.ok(r.json(), ["readlink", "/workspace/up"]).strip() == "../"
    assert work_entries(Path(service.state_dir)) == []


def test_reflog_has_a_neutral_identity(job: dict[str, Any], dexec: Any) -> None:
    log = dexec.ok(job, ["cat", "/workspace/.git/logs/HEAD"])
    assert log.strip(), "no reflog to check"
    for line in log.strip().splitlines():
        assert "dockyard <dockyard@localhost>" in line, line
    assert socket.gethostname() not in log


# --- a second service: ops caps, an allowlisted host with credentials, the sweep -----------------


class GitServer:
    """Smart HTTP (`git http-backend`) behind Basic auth, each request slowed a little so a
    clone lasts long enough to watch git's command line."""

    def __init__(self, root: Path, user: str, password: str, delay_s: float = 0.3):
        self.root = root
        self.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.delay_s = delay_s
        self.auth_seen: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self.serve()

            def do_POST(self) -> None:
                self.serve()

            def serve(self) -> None:
                auth = self.headers.get("Authorization", "")
                outer.auth_seen.append(auth)
                if auth != outer.expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="t"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                time.sleep(outer.delay_s)
                path, _, query = self.path.partition("?")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                env = {
                    "PATH": os.environ["PATH"],
                    "GIT_PROJECT_ROOT": str(outer.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "PATH_INFO": path,
                    "QUERY_STRING": query,
                    "REQUEST_METHOD": self.command,
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                    "HTTP_GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
                    "REMOTE_ADDR": "127.0.0.1",
                }
                if enc := self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = enc
                out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                status = 200
                headers = []
                for line in head.decode().split("\r\n"):
                    key, _, value = line.partition(": ")
                    if key.lower() == "status":
                        status = int(value.split()[0])
                    elif key:
                        headers.append((key, value))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def git_server(tmp_path_factory: pytest.TempPathFactory, fixture_repo: FixtureRepo) -> Iterator[GitServer]:
    root = tmp_path_factory.mktemp("git-http")
    subprocess.run(
        ["git", "clone", "-q", "--bare", str(fixture_repo.path), str(root / "hello.git")], check=True
    )
    server = GitServer(root, USER, SECRET)
    yield server
    server.close()


@pytest.fixture(scope="module")
def capped(
    tmp_path_factory: pytest.TempPathFactory,
    fixture_repo: FixtureRepo,
    docker_client: Any,
    git_server: GitServer,
    fake_github: FakeGitHub,
) -> Iterator[tuple[AuxService, Api, JobFactory]]:
    root = tmp_path_factory.mktemp("capped")
    svc = AuxService(
        root,
        **github_env(fake_github),
        DOCKYARD_CLONE_ALLOW_HOSTS=f"127.0.0.1:{git_server.port}",
        DOCKYARD_MAX_CLONE_MB="2",
        DOCKYARD_MAX_TREE_ENTRIES="200",
        DOCKYARD_MAX_DIR_ENTRIES="20",
    )
    # left behind by an earlier, crashed life of this service: swept at start
    stale = svc.state_dir / "work" / "job_00000000deadbeef-x1"
    subprocess.run(["mkdir", "-p", "/".join([str(stale), *["d"] * 1100])], check=True)
    (svc.state_dir / "work" / "stray.tar").write_bytes(b"x")
    svc.start()
    api = Api(svc, svc.tokens["bot"])
    factory = JobFactory(api, fixture_repo, docker_client)
    try:
        yield svc, api, factory
    finally:
        factory.cleanup()
        svc.stop()


def test_work_is_swept_at_start_and_by_the_reaper(capped: tuple[AuxService, Api, JobFactory]) -> None:
    svc, _, _ = capped
    wait_for(lambda: work_entries(svc.state_dir) == [], what="the start-up sweep of <state>/work")
    later = svc.state_dir / "work" / "job_00000000cafef00d-y2"
    later.joinpath("repo", ".git").mkdir(parents=True)
    wait_for(lambda: not later.exists(), what="the reaper's sweep of <state>/work")


@pytest.mark.parametrize(("name", "cap"), [("wide", "dir_entries"), ("many", "tree_entries"), ("big", None)])
def test_ops_caps_refuse_with_their_setting(
    capped: tuple[AuxService, Api, JobFactory], hostile: dict[str, Path], name: str, cap: str | None
) -> None:
    svc, api, factory = capped
    err = api.error(factory.raw(factory.body(clone_url=hostile[name].as_uri())), 413, "repo_too_large")
    if cap is not None:
        assert err["details"]["cap"] == cap
    else:  # caught while fetching or when the tree is read, whichever comes first
        assert err["details"]["cap"] in ("size", "fetch_size")
        assert err["details"]["setting"] == "DOCKYARD_MAX_CLONE_MB"
    assert err["details"]["setting"] in err["message"]
    assert work_entries(svc.state_dir) == []


def test_the_configured_git_host_may_be_on_loopback(
    capped: tuple[AuxService, Api, JobFactory], fake_github: FakeGitHub
) -> None:
    _, api, factory = capped
    url = f"{fake_github.web_url}/{fake_github.owner}/nothing.git"
    err = api.error(factory.raw(factory.body(clone_url=url)), (404, 502))  # allowed; no token
    assert (err["code"], err["details"]["reason"]) in (
        ("clone_failed", "auth_failed"),
        ("repo_not_found", "repo_not_found"),
    )


def _cmdlines() -> list[bytes]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:
                continue
    return found


def test_credentials_in_the_url_reach_git_only_as_a_header(
    capped: tuple[AuxService, Api, JobFactory],
    git_server: GitServer,
    fixture_repo: FixtureRepo,
    auditor_api: Any,
) -> None:
    svc, api, factory = capped
    url = f"http://{USER}:{SECRET}@127.0.0.1:{git_server.port}/hello.git"
    seen_git, leaked = [], []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for cmd in _cmdlines():
                if cmd.startswith(b"git") and str(git_server.port).encode() in cmd:
                    seen_git.append(cmd)
                if SECRET.encode() in cmd:
                    leaked.append(cmd)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        r = factory.raw(factory.body(clone_url=url))
    finally:
        done.set()
        watcher.join()
    assert r.status_code == 201, r.text[:800]
    job = r.json()
    assert job["base_sha"] == fixture_repo.sha
    assert git_server.expected in git_server.auth_seen, "the credentials did not reach the server"
    assert seen_git, "the watcher never saw the clone's git process (the check proves nothing)"
    assert not leaked, f"the secret was on a command line: {leaked[0][:200]!r}"
    assert job["clone_url"] == f"http://127.0.0.1:{git_server.port}/hello.git"
    assert SECRET not in api.get(f"/v1/jobs/{job['id']}").text
    records = audit(api, job_id=job["id"])
    assert records and SECRET not in str(records)
    logs = "".join(p.read_text(errors="replace") for p in svc.log_dir.glob("service-*.log"))
    assert SECRET not in logs
    assert SECRET not in (svc.state_dir / "dockyard.sqlite3").read_bytes().decode(errors="replace")


def test_git_honours_the_address_pin(git_server: GitServer, tmp_path: Path) -> None:
    """The pin the policy hands git (http.curloptResolve) decides where git connects: a name that
    resolves nowhere reaches the pinned address, in any case."""
    basic = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_CONFIG_COUNT": "2",
        "GIT_CONFIG_KEY_0": "http.curloptResolve",
        "GIT_CONFIG_VALUE_0": f"pinned.invalid:{git_server.port}:127.0.0.1",
        "GIT_CONFIG_KEY_1": "http.extraHeader",
        "GIT_CONFIG_VALUE_1": f"Authorization: Basic {basic}",
    }
    url = f"http://Pinned.Invalid:{git_server.port}/hello.git"
    out = subprocess.run(["git", "ls-remote", url], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "refs/heads/main" in out.stdout
    env["GIT_CONFIG_COUNT"] = "1"
    env["GIT_CONFIG_VALUE_0"] = f"elsewhere.invalid:{git_server.port}:127.0.0.1"
    out = subprocess.run(["git", "ls-remote", url], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
