"""GitHub through the REAL githubkit against the fake GitHub (real bare repos, real smart-HTTP
clone): token-safe clone, one-commit Git Data API commits checked with `git`, idempotency,
replacement, conflicts, retries, draft PRs and CI checks."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.fakes.github import FakeGitHub
from tests.integration.aux_service import AuxService, github_service

pytestmark = pytest.mark.docker

FILES: dict[str, bytes | str] = {
    "README.md": "# hello\n",
    "src/app.py": "def answer():\n    return 41\n",
    "run.sh": "#!/bin/sh\necho run\n",
    "old.txt": "to be deleted\n",
    "img.bin": b"\x89PNG\x00\x01\x02",
}


@pytest.fixture(scope="module")
def gh_service(tmp_path_factory: pytest.TempPathFactory, fake_github: FakeGitHub) -> Iterator[AuxService]:
    with github_service(tmp_path_factory.mktemp("gh-service"), fake_github) as svc:
        yield svc


@pytest.fixture
def gh(gh_service: AuxService, fake_gh: FakeGitHub) -> Iterator[tuple[Api, FakeGitHub, list[str]]]:
    api = Api(gh_service, gh_service.tokens["bot"])
    jobs: list[str] = []
    yield api, fake_gh, jobs
    for job_id in jobs:
        with contextlib.suppress(Exception):
            api.delete(f"/v1/jobs/{job_id}", timeout=60)


def perms(token: Any) -> dict[str, str]:
    """What the service asked for (GitHub adds metadata:read to every installation token)."""
    return {k: v for k, v in token.permissions.items() if k != "metadata"}


def git_out(fake: FakeGitHub, repo: tuple[str, str], *args: str) -> str:
    return fake.git(*repo, *args).strip()


def new_repo(fake: FakeGitHub, files: dict[str, bytes | str] | None = None) -> tuple[str, str]:
    name = f"r{time.monotonic_ns() % 10**9}"
    fake.create_repo("octo", name, files or FILES, executable={"run.sh"}, symlinks={"link": "README.md"})
    return "octo", name


def create(api: Api, jobs: list[str], repo: tuple[str, str], **extra: Any) -> dict[str, Any]:
    r = api.post("/v1/jobs", {"repo": f"{repo[0]}/{repo[1]}", "language": "generic", **extra})
    assert r.status_code == 201, r.text
    jobs.append(r.json()["id"])
    return r.json()  # type: ignore[no-any-return]


def edit(api: Api, job: dict[str, Any]) -> None:
    api.write(job["id"], "src/app.py", "def answer():\n    return 42\n")
    api.write(job["id"], "docs/new.md", "new\n")


def commit(api: Api, job: dict[str, Any], **body: Any) -> Any:
    return api.post(
        f"/v1/jobs/{job['id']}/commit", {"branch": "fix/answer", "message": "Fix the answer", **body}
    )


def test_clone_is_token_safe_and_least_privilege(
    gh: tuple[Api, FakeGitHub, list[str]], gh_service: AuxService, docker_client: Any, dexec: Any
) -> None:
    api, fake, jobs = gh
    repo = new_repo(fake)
    job = create(api, jobs, repo)
    assert job["repo"] == f"octo/{repo[1]}" and job["base_sha"] == fake.head(*repo, "main")
    assert api.read(job["id"], "src/app.py")["content"] == "def answer():\n    return 41\n"
    (token,) = [t for t in fake.tokens if t.covers(*repo)]
    assert perms(token) == {"contents": "read"} and token.repositories == frozenset({repo[1]})
    secrets = [token.token, base64.b64encode(f"x-access-token:{token.token}".encode()).decode()]
    inspect = str(docker_client.api.inspect_container(job["container_id"]))
    inside = dexec.ok(
        job, "cat /proc/1/environ; cat .git/config; grep -r . .git/ 2>/dev/null | head -c 2000000"
    )
    logs = "".join(p.read_text(errors="replace") for p in Path(gh_service.log_dir).glob("service-*.log"))
    db = (gh_service.state_dir / "dockyard.sqlite3").read_bytes()
    for s in secrets:
        assert s not in inspect and s not in inside and s not in logs and s.encode() not in db
    assert "remote" not in dexec.ok(job, "cat .git/config")


def test_one_commit_with_modes_binary_and_deletion(gh: tuple[Api, FakeGitHub, list[str]], dexec: Any) -> None:
    api, fake, jobs = gh
    repo = new_repo(fake)
    job = create(api, jobs, repo)
    edit(api, job)
    dexec.ok(
        job, "rm old.txt && printf '\\000\\377bin' > data.bin && chmod 755 src/app.py && ln -s src/app.py l2"
    )
    r = commit(api, job)
    assert r.status_code == 200, r.text
    body = r.json()
    sha = body["commit_sha"]
    assert body["branch"] == "fix/answer" and body["files_changed"] == 5 and body["pull_request"] is None
    assert fake.head(*repo, "fix/answer") == sha
    assert git_out(fake, repo, "rev-list", "--parents", "-n", "1", sha).split() == [sha, job["base_sha"]]
    status = git_out(fake, repo, "show", "--name-status", "--format=", sha).splitlines()
    assert sorted(status) == sorted(["A\tdata.bin", "A\tdocs/new.md", "A\tl2", "D\told.txt", "M\tsrc/app.py"])
    tree = git_out(fake, repo, "ls-tree", "-r", sha)
    assert "100755 blob" in next(line for line in tree.splitlines() if line.endswith("\tsrc/app.py"))
    assert "120000 blob" in next(line for line in tree.splitlines() if line.endswith("\tl2"))
    assert git_out(fake, repo, "cat-file", "-p", f"{sha}:l2") == "src/app.py"
    raw = subprocess.run(
        ["git", "cat-file", "blob", f"{sha}:data.bin"],
        cwd=fake.repo_path(*repo),
        capture_output=True,
        check=True,
    ).stdout
    assert raw == b"\x00\xffbin"  # binary bytes survive the trip
    blobs = fake.requests_matching("POST", r"/git/blobs$")
    assert len(blobs) == 1  # only the binary file travels as a blob; text is inline in the tree
    token_perms = [perms(t) for t in fake.tokens if t.covers(*repo)]
    assert {"contents": "write"} in token_perms


def test_same_diff_same_commit_and_later_commit_replaces(gh: tuple[Api, FakeGitHub, list[str]]) -> None:
    api, fake, jobs = gh
    repo = new_repo(fake)
    job = create(api, jobs, repo)
    edit(api, job)
    first = commit(api, job).json()["commit_sha"]
    trees_before = len(fake.requests_matching("POST", r"/git/(trees|commits)$"))
    again = commit(api, job).json()["commit_sha"]
    assert again == first
    assert len(fake.requests_matching("POST", r"/git/(trees|commits)$")) == trees_before  # nothing new
    api.write(job["id"], "docs/new.md", "newer\n")
    second = commit(api, job).json()["commit_sha"]
    assert second != first
    # Still exactly one commit on top of base: the second replaced the first.
    assert git_out(fake, repo, "rev-list", "--count", f"{job['base_sha']}..fix/answer") == "1"
    assert git_out(fake, repo, "rev-parse", "fix/answer^") == job["base_sha"]
    assert api.job(job["id"])["commits"] == [{"sha": second, "branch": "fix/answer"}]


def test_commit_with_an_idempotency_key_replays_without_touching_github(
    gh: tuple[Api, FakeGitHub, list[str]],
) -> None:
    api, fake, jobs = gh
    repo = new_repo(fake)
    job = create(api, jobs, repo)
    edit(api, job)
    path, body = f"/v1/jobs/{job['id']}/commit", {"branch": "fix/answer", "message": "Fix the answer"}
    first = api.post(path, body, headers={"Idempotency-Key": "commit-1"})
    assert first.status_code == 200 and "Idempotency-Replayed" not in first.headers
    calls = len(fake.requests)
    api.write(job["id"], "docs/new.md", "changed after the first commit\n")
    again = api.post(path, body, headers={"Idempotency-Key": "commit-1"})
    assert again.status_code == 200 and again.headers["Idempotency-Replayed"] == "true"
    assert again.json() == first.json() and len(fake.requests) == calls  # the first answer, nothing sent
    api.error(
        api.post(path, {**body, "message": "another"}, headers={"Idempotency-Key": "commit-1"}),
        409,
        "idempotency_conflict",
    )
    fresh = api.post(path, body, headers={"Idempotency-Key": "commit-2"})  # a new key: a new commit
    assert fresh.status_code == 200 and fresh.json()["commit_sha"] != first.json()["commit_sha"]


def test_branch_moved_without_overlap_builds_on_it_and_overlap_conflicts(
    gh: tuple[Api, FakeGitHub, list[str]],
) -> None:
    api, fake, jobs = gh
    repo = new_repo(fake)
    job = create(api, jobs, repo)
    edit(api, job)
    theirs = fake.push_commit(*repo, "fix/answer", {"CHANGELOG.md": "theirs\n"}, base="main")
    r = commit(api, job)
    assert r.status_code == 200, r.text
    assert git_out(fake, repo, "rev-parse", f"{r.json()['commit_sha']}^") == theirs
    fake.push_commit(*repo, "fix/answer", {"src/app.py": "someone else's\n"})
    clash = commit(api, job, message="again")
    err = api.error(clash, 409, "commit_conflict")
    assert err["details"]["files"] == ["src/app.py"]


def test_draft_pr_once(gh: tuple[Api, FakeGitHub, list[str]]) -> None:
    api, fake, jobs = gh
    repo = new_repo(fake)
    job = create(api, jobs, repo)
    edit(api, job)
    pr = {"title": "Fix the answer", "body": "It was off by one.", "draft": True}
    first = commit(api, job, pull_request=pr).json()["pull_request"]
    second = commit(api, job, pull_request=pr).json()["pull_request"]
    assert first == second and first["number"] > 0 and first["url"].startswith("http")
    (record,) = fake.pulls(*repo)
    assert record.draft and record.head == "fix/answer" and record.base == "main"


def test_nothing_to_commit_and_clone_url_jobs(gh: tuple[Api, FakeGitHub, list[str]]) -> None:
    api, fake, jobs = gh
    job = create(api, jobs, new_repo(fake))
    api.error(commit(api, job), 409, "nothing_to_commit")


def test_transient_failures_retried_other_4xx_reported(gh: tuple[Api, FakeGitHub, list[str]]) -> None:
    api, fake, jobs = gh
    repo = new_repo(fake)
    job = create(api, jobs, repo)
    edit(api, job)
    fake.inject("POST", r"/git/trees$", 502, times=2)
    fake.inject_secondary_rate_limit("POST", r"/git/commits$", retry_after=1)
    fake.inject_primary_rate_limit("POST", r"/git/refs$", reset_in=1)
    r = commit(api, job)
    assert r.status_code == 200, r.text
    assert len(fake.requests_matching("POST", r"/git/trees$")) == 3
    assert len(fake.requests_matching("POST", r"/git/commits$")) == 2
    assert len(fake.requests_matching("POST", r"/git/refs$")) == 2
    fake.inject(
        "POST", r"/git/trees$", 422, body={"message": "tree.path contains a malformed path component"}
    )
    api.write(job["id"], "docs/new.md", "other\n")
    err = api.error(commit(api, job), 502, "github_error")
    assert "malformed path component" in err["message"]


def test_unknown_repo_and_repo_without_app(gh: tuple[Api, FakeGitHub, list[str]]) -> None:
    api, fake, _ = gh
    api.error(api.post("/v1/jobs", {"repo": "octo/does-not-exist"}), 404, "repo_not_found")
    repo = new_repo(fake)
    fake.set_installed(*repo, False)
    err = api.error(api.post("/v1/jobs", {"repo": f"octo/{repo[1]}"}), 404, "repo_not_found")
    assert repo[1] in err["message"]


def test_checks_pending_then_passed_failed_and_no_ci(gh: tuple[Api, FakeGitHub, list[str]]) -> None:
    api, fake, jobs = gh
    repo = new_repo(fake)
    job = create(api, jobs, repo)
    edit(api, job)
    sha = commit(api, job).json()["commit_sha"]
    runs = [{"name": f"test-{i}", "status": "completed", "conclusion": "success"} for i in range(130)]
    fake.script_checks(
        *repo, sha, [(0, [{"name": "build", "status": "in_progress", "conclusion": None}]), (1.0, runs)]
    )
    now = api.get(f"/v1/jobs/{job['id']}/checks", params={"sha": sha}).json()
    assert now["status"] == "pending"
    waited = api.get(f"/v1/jobs/{job['id']}/checks", params={"sha": sha, "wait_s": 10}).json()
    assert waited["status"] == "passed" and len(waited["checks"]) == 130  # paginated past 100

    fake.set_checks(
        *repo,
        sha,
        [
            {"name": "lint", "status": "completed", "conclusion": "failure"},
            {"name": "unit", "status": "completed", "conclusion": "skipped"},
        ],
    )
    failed = api.get(f"/v1/jobs/{job['id']}/checks").json()  # default: the job's latest commit
    assert failed["status"] == "failed" and failed["details"]["failed"] == [
        {"name": "lint", "conclusion": "failure"}
    ]

    fake.set_checks(*repo, sha, [])
    fake.set_statuses(*repo, sha, [{"context": "ci/legacy", "state": "error"}])
    assert api.get(f"/v1/jobs/{job['id']}/checks").json()["status"] == "failed"

    api.write(job["id"], "docs/new.md", "no ci for this one\n")
    sha2 = commit(api, job).json()["commit_sha"]
    first = api.get(f"/v1/jobs/{job['id']}/checks", params={"sha": sha2}).json()
    assert first["status"] == "pending"  # nothing registered yet, grace not over
    later = api.get(f"/v1/jobs/{job['id']}/checks", params={"sha": sha2, "wait_s": 5}).json()
    assert later["status"] == "no_ci"
    assert {"checks": "read", "statuses": "read"} in [perms(t) for t in fake.tokens if t.covers(*repo)]


@pytest.mark.parametrize("branch", ["trunk", "release/2.0", "feature-base"])
def test_commit_to_a_protected_branch_is_refused_and_changes_nothing(
    gh: tuple[Api, FakeGitHub, list[str]], branch: str
) -> None:
    """The default branch (as GitHub names it, here `trunk`), the job's own base branch and ops'
    patterns (release/*) are never targets."""
    api, fake, jobs = gh
    repo = ("octo", f"p{time.monotonic_ns() % 10**9}")
    fake.create_repo(*repo, FILES, default_branch="trunk")
    fake.git(*repo, "branch", "feature-base", "trunk")
    heads = {b: fake.head(*repo, b) for b in ("trunk", "feature-base")}
    job = create(api, jobs, repo, ref="feature-base")
    edit(api, job)
    writes_before = len(fake.requests_matching("POST", r"/git/(trees|commits|refs)")) + len(
        fake.requests_matching("PATCH", r"/git/refs/")
    )
    err = Api.error(commit(api, job, branch=branch), 403, "branch_protected")
    assert branch in err["message"] and err["details"]["branch"] == branch
    assert {b: fake.head(*repo, b) for b in heads} == heads
    writes_after = len(fake.requests_matching("POST", r"/git/(trees|commits|refs)")) + len(
        fake.requests_matching("PATCH", r"/git/refs/")
    )
    assert writes_after == writes_before  # refused before anything was written
    assert api.job(job["id"])["commits"] == []
    # A branch of its own still works.
    assert commit(api, job, branch="fix/answer").status_code == 200


def test_a_commit_of_the_new_tools_and_what_an_auditor_reads_after_the_job(
    gh: tuple[Api, FakeGitHub, list[str]], dexec: Any
) -> None:
    """delete_file, move_file and executable reach the one commit; after the job is deleted the
    auditor reads the diff that was kept, and its patch hash is the one the commit record names."""
    api, fake, jobs = gh
    auditor = Api(api.service, api.service.tokens["auditor"])
    repo = new_repo(fake)
    job = create(api, jobs, repo)
    api.tool_ok(job["id"], "delete_file", path="old.txt")
    api.tool_ok(job["id"], "move_file", **{"from": "src/app.py", "to": "lib/app.py"})
    api.tool_ok(job["id"], "write_file", path="tools/go.sh", content="#!/bin/sh\n", executable=True)
    api.tool_ok(job["id"], "write_file", path="run.sh", content="#!/bin/sh\necho run\n", executable=False)
    live = auditor.get(f"/v1/jobs/{job['id']}/diff")
    assert live.status_code == 200 and live.json()["kept"] is False  # auditors read the diff too
    r = commit(api, job)
    assert r.status_code == 200, r.text
    sha = r.json()["commit_sha"]
    status = git_out(fake, repo, "show", "--no-renames", "--name-status", "--format=", sha).splitlines()
    want = ["D\told.txt", "D\tsrc/app.py", "A\tlib/app.py", "A\ttools/go.sh", "M\trun.sh"]
    assert sorted(status) == sorted(want)
    tree = {ln.split("\t")[1]: ln.split()[0] for ln in git_out(fake, repo, "ls-tree", "-r", sha).splitlines()}
    assert tree["tools/go.sh"] == "100755" and tree["run.sh"] == "100644"
    assert git_out(fake, repo, "ls-tree", f"{sha}^", "run.sh").split()[0] == "100755"  # a mode change

    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    kept = auditor.get(f"/v1/jobs/{job['id']}/diff")
    assert kept.status_code == 200, kept.text
    body = kept.json()
    assert body["kept"] is True and body["patch"] == live.json()["patch"]
    assert {f["path"] for f in body["files"]} == {p.split("\t")[1] for p in want}
    records = auditor.get("/v1/audit", params={"job_id": job["id"], "action": "commit"}).json()["records"]
    assert records[-1]["details"]["patch_sha256"] == body["patch_sha256"] == live.json()["patch_sha256"]
