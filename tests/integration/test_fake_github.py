"""The fake GitHub (tests/fakes/github.py) through the REAL githubkit client.

Every response is read through `.parsed_data`, which proves githubkit's strict models accept what the
fake sends; the git side is checked with `git` in the fake's bare repositories.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.exception import PrimaryRateLimitExceeded, RequestFailed, SecondaryRateLimitExceeded

from tests.fakes.github import FakeGitHub

TIMEOUT = 20.0
MakeRepo = Callable[..., tuple[str, str]]

FILES: dict[str, bytes | str] = {
    "README.md": "# hello\n",
    "src/app.py": "def foo(x):\n    return x + 1\n",
    "old.txt": "to be deleted\n",
    "keep/deep/file.txt": "deep\n",
    "scripts/run.sh": "#!/bin/sh\necho run\n",
}
BINARY = bytes(range(256)) + b"\x00\x00tail\x00"


def app_client(fake: FakeGitHub, **kw: Any) -> GitHub[Any]:
    return GitHub(
        AppAuthStrategy(fake.app_id, fake.private_key_pem),
        base_url=fake.api_url,
        timeout=TIMEOUT,
        cache_strategy=MemCacheStrategy(),
        **kw,
    )


def installation_client(
    fake: FakeGitHub, repos: list[str] | None, permissions: dict[str, str] | None = None, **kw: Any
) -> GitHub[Any]:
    app = app_client(fake, **kw)
    auth = AppAuthStrategy(fake.app_id, fake.private_key_pem).as_installation(
        fake.installation_id,
        **({"repositories": repos} if repos is not None else {}),
        **({"permissions": permissions} if permissions is not None else {}),
    )
    return app.with_auth(auth)


def token_client(fake: FakeGitHub, token: str, **kw: Any) -> GitHub[Any]:
    return GitHub(
        TokenAuthStrategy(token),
        base_url=fake.api_url,
        timeout=TIMEOUT,
        cache_strategy=MemCacheStrategy(),
        **kw,
    )


def issue_token(fake: FakeGitHub, repos: list[str], permissions: dict[str, str]) -> str:
    app = app_client(fake)
    resp = app.rest.apps.create_installation_access_token(
        fake.installation_id,
        data={"repositories": repos, "permissions": permissions},  # type: ignore[typeddict-item]
    )
    return resp.parsed_data.token


def failed(exc: pytest.ExceptionInfo[RequestFailed]) -> tuple[int, dict[str, Any]]:
    return exc.value.response.status_code, exc.value.response.json()


def run_git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=check, timeout=60
    )


# --- auth ------------------------------------------------------------------------------------------


def test_app_jwt_installation_and_scoped_tokens(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo(FILES)
    _, other = make_github_repo(FILES)
    app = app_client(fake_gh)

    inst = app.rest.apps.get_repo_installation(owner, name).parsed_data
    assert inst.id == fake_gh.installation_id
    assert inst.account is not None and getattr(inst.account, "login", None) == owner
    assert inst.app_id == fake_gh.app_id

    resp = app.rest.apps.create_installation_access_token(
        inst.id,
        data={"repositories": [name], "permissions": {"contents": "write", "pull_requests": "write"}},
    )
    assert resp.status_code == 201
    tok = resp.parsed_data
    assert tok.token.startswith("ghs_")
    expires = datetime.strptime(tok.expires_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(minutes=55) < expires - datetime.now(UTC) <= timedelta(hours=1)
    assert (
        tok.permissions and tok.permissions.contents == "write" and tok.permissions.pull_requests == "write"
    )
    assert tok.repository_selection == "selected"
    assert tok.repositories and [r.name for r in tok.repositories] == [name]
    issued = fake_gh.token_info(tok.token)
    assert issued is not None and issued.repositories == frozenset({name.lower()})
    assert issued.permissions == {"metadata": "read", "contents": "write", "pull_requests": "write"}
    assert fake_gh.requests_matching("POST", r"/access_tokens$")[-1].auth == "app"

    # the token works on its repo, not on another one of the same installation
    gh = token_client(fake_gh, tok.token)
    assert gh.rest.repos.get(owner, name).parsed_data.full_name == f"{owner}/{name}"
    with pytest.raises(RequestFailed) as e:
        gh.rest.repos.get(owner, other)
    assert failed(e) == (403, {**failed(e)[1], "message": "Resource not accessible by integration"})
    # a token for the other repo gets 403 on this one
    other_gh = installation_client(fake_gh, [other], {"contents": "read"})
    assert other_gh.rest.repos.get(owner, other).parsed_data.name == other
    with pytest.raises(RequestFailed) as e:
        other_gh.rest.git.get_ref(owner, name, "heads/main")
    assert failed(e)[0] == 403
    # missing permission: contents read cannot write; no checks permission asked -> 403
    reader = installation_client(fake_gh, [name], {"contents": "read"})
    with pytest.raises(RequestFailed) as e:
        reader.rest.git.create_blob(owner, name, data={"content": "x", "encoding": "utf-8"})
    assert failed(e)[0] == 403
    with pytest.raises(RequestFailed) as e:
        reader.rest.checks.list_for_ref(owner, name, "main")
    assert failed(e)[0] == 403
    # unknown repo -> 404; more than the App has -> 422
    with pytest.raises(RequestFailed) as e:
        gh.rest.repos.get(owner, "does-not-exist")
    assert failed(e)[0] == 404 and failed(e)[1]["message"] == "Not Found"
    with pytest.raises(RequestFailed) as e:
        app.rest.apps.create_installation_access_token(
            inst.id, data={"repositories": [name], "permissions": {"administration": "write"}}
        )
    assert failed(e)[0] == 422
    with pytest.raises(RequestFailed) as e:
        app.rest.apps.create_installation_access_token(inst.id, data={"repositories": ["nope-" + name]})
    assert failed(e)[0] == 422


def test_bad_credentials(fake_gh: FakeGitHub, make_github_repo: MakeRepo, tmp_path: Path) -> None:
    owner, name = make_github_repo()
    # a JWT signed by another key
    stranger = FakeGitHub(tmp_path / "stranger")
    bad_app = GitHub(
        AppAuthStrategy(fake_gh.app_id, stranger.private_key_pem),
        base_url=fake_gh.api_url,
        timeout=TIMEOUT,
        cache_strategy=MemCacheStrategy(),
    )
    with pytest.raises(RequestFailed) as e:
        bad_app.rest.apps.get_repo_installation(owner, name)
    assert failed(e)[0] == 401
    # an installation token on an App route, a JWT on a repo route
    # (keep each client in a variable: `.rest` holds only a weak reference to its GitHub object)
    token = issue_token(fake_gh, [name], {"contents": "read"})
    gh = token_client(fake_gh, token)
    with pytest.raises(RequestFailed) as e:
        gh.rest.apps.get_repo_installation(owner, name)
    assert failed(e)[0] == 401
    # (githubkit refuses client-side to send an App JWT to a non-App route: check with plain HTTP)
    claims = {"iss": str(fake_gh.app_id), "iat": int(time.time()) - 60, "exp": int(time.time()) + 500}
    app_jwt = jwt.encode(claims, fake_gh.private_key_pem, algorithm="RS256")
    r = requests.get(
        f"{fake_gh.api_url}/repos/{owner}/{name}",
        headers={"Authorization": f"Bearer {app_jwt}"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 401
    ok = requests.get(
        f"{fake_gh.api_url}/repos/{owner}/{name}/installation",
        headers={"Authorization": f"Bearer {app_jwt}"},
        timeout=TIMEOUT,
    )
    assert ok.status_code == 200 and ok.json()["id"] == fake_gh.installation_id
    for bad_claims in (
        {**claims, "iss": "12345"},  # another App
        {**claims, "exp": int(time.time()) - 120},  # expired
        {**claims, "exp": int(time.time()) + 3600},  # too far ahead
    ):
        r = requests.get(
            f"{fake_gh.api_url}/repos/{owner}/{name}/installation",
            headers={
                "Authorization": "Bearer "
                + jwt.encode(bad_claims, fake_gh.private_key_pem, algorithm="RS256")
            },
            timeout=TIMEOUT,
        )
        assert r.status_code == 401, bad_claims
    # revoked, expired and unknown tokens
    revocable = token_client(fake_gh, issue_token(fake_gh, [name], {"contents": "read"}))
    assert revocable.rest.apps.revoke_installation_access_token().status_code == 204
    with pytest.raises(RequestFailed) as e:
        revocable.rest.repos.get(owner, name)
    assert failed(e)[0] == 401
    fake_gh.expire_token(token)
    with pytest.raises(RequestFailed) as e:
        gh.rest.repos.get(owner, name)
    assert failed(e) == (401, {**failed(e)[1], "message": "Bad credentials"})
    bogus = token_client(fake_gh, "ghs_" + "x" * 36)
    with pytest.raises(RequestFailed) as e:
        bogus.rest.repos.get(owner, name)
    assert failed(e)[0] == 401


def test_repo_default_branch(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo(default_branch="trunk")
    gh = installation_client(fake_gh, [name], {"contents": "read"})
    repo = gh.rest.repos.get(owner, name).parsed_data
    assert repo.default_branch == "trunk"
    assert repo.full_name == f"{owner}/{name}" and repo.private is True
    assert repo.clone_url == f"{fake_gh.web_url}/{owner}/{name}.git"
    assert (
        fake_gh.head(owner, name, "trunk")
        == gh.rest.git.get_ref(owner, name, "heads/trunk").parsed_data.object_.sha
    )


# --- git data --------------------------------------------------------------------------------------


def test_one_commit_through_the_git_data_api(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo(FILES, executable={"scripts/run.sh"}, symlinks={"link_old": "README.md"})
    gh = installation_client(fake_gh, [name], {"contents": "write"})
    bare = fake_gh.repo_path(owner, name)

    ref = gh.rest.git.get_ref(owner, name, "heads/main").parsed_data
    base = ref.object_.sha
    assert ref.ref == "refs/heads/main" and ref.object_.type == "commit" and base == fake_gh.head(owner, name)
    base_commit = gh.rest.git.get_commit(owner, name, base).parsed_data
    assert base_commit.sha == base and base_commit.parents == []
    base_tree = base_commit.tree.sha
    with pytest.raises(RequestFailed) as e:
        gh.rest.git.get_ref(owner, name, "heads/nope")
    assert failed(e)[0] == 404

    blob_resp = gh.rest.git.create_blob(
        owner, name, data={"content": base64.b64encode(BINARY).decode(), "encoding": "base64"}
    )
    assert blob_resp.status_code == 201
    blob = blob_resp.parsed_data
    expected_sha = (
        subprocess.run(["git", "hash-object", "--stdin"], input=BINARY, capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    assert blob.sha == expected_sha
    assert (
        subprocess.run(
            ["git", f"--git-dir={bare}", "cat-file", "blob", blob.sha], capture_output=True, check=True
        ).stdout
        == BINARY
    )

    readme = "# hello\n\nGr\u00fc\u00dfe \U0001f680\n"
    tree_resp = gh.rest.git.create_tree(
        owner,
        name,
        data={
            "base_tree": base_tree,
            "tree": [
                {"path": "README.md", "mode": "100644", "type": "blob", "content": readme},
                {"path": "new/nested/dir/file.txt", "mode": "100644", "type": "blob", "content": "nested\n"},
                {"path": "bin/data.bin", "mode": "100644", "type": "blob", "sha": blob.sha},
                {"path": "old.txt", "mode": "100644", "type": "blob", "sha": None},
                {"path": "link_old", "mode": "120000", "type": "blob", "sha": None},
                {"path": "tool.sh", "mode": "100755", "type": "blob", "content": "#!/bin/sh\necho tool\n"},
                {"path": "src/link.py", "mode": "120000", "type": "blob", "content": "app.py"},
                {
                    "path": "scripts/run.sh",
                    "mode": "100644",
                    "type": "blob",
                    "content": "#!/bin/sh\necho run\n",
                },
            ],
        },
    )
    assert tree_resp.status_code == 201
    tree = tree_resp.parsed_data
    top = {t.path: (t.mode, t.type) for t in tree.tree}
    assert top["tool.sh"] == ("100755", "blob") and top["new"] == ("040000", "tree")
    assert "old.txt" not in top and "link_old" not in top
    got_tree = gh.rest.git.get_tree(owner, name, tree.sha, recursive="1").parsed_data
    assert {t.path for t in got_tree.tree} >= {"new/nested/dir/file.txt", "src/link.py", "bin/data.bin"}

    who = {"name": "Dockyard Bot", "email": "bot@dockyard.invalid", "date": "2026-03-04T05:06:07Z"}
    commit_resp = gh.rest.git.create_commit(
        owner,
        name,
        data={
            "message": "fix: one commit\n\nbody line\n",
            "tree": tree.sha,
            "parents": [base],
            "author": who,
            "committer": who,
        },
    )
    assert commit_resp.status_code == 201
    commit = commit_resp.parsed_data
    assert commit.tree.sha == tree.sha and [p.sha for p in commit.parents] == [base]
    assert commit.author.name == "Dockyard Bot" and commit.author.date == datetime(
        2026, 3, 4, 5, 6, 7, tzinfo=UTC
    )
    assert commit.message == "fix: one commit\n\nbody line\n"
    assert gh.rest.git.get_commit(owner, name, commit.sha).parsed_data.sha == commit.sha

    # refs: create (a name with slashes), duplicate, fast-forward, non-ff with and without force
    created = gh.rest.git.create_ref(owner, name, data={"ref": "refs/heads/fix/bug-42", "sha": commit.sha})
    assert created.status_code == 201 and created.parsed_data.object_.sha == commit.sha
    assert gh.rest.git.get_ref(owner, name, "heads/fix/bug-42").parsed_data.ref == "refs/heads/fix/bug-42"
    with pytest.raises(RequestFailed) as e:
        gh.rest.git.create_ref(owner, name, data={"ref": "refs/heads/fix/bug-42", "sha": base})
    assert failed(e) == (422, {**failed(e)[1], "message": "Reference already exists"})

    def commit_on(parent: str, text: str) -> str:
        t = gh.rest.git.create_tree(
            owner,
            name,
            data={
                "base_tree": base_tree,
                "tree": [{"path": "x.txt", "mode": "100644", "type": "blob", "content": text}],
            },
        ).parsed_data.sha
        return gh.rest.git.create_commit(
            owner, name, data={"message": text, "tree": t, "parents": [parent]}
        ).parsed_data.sha

    child = commit_on(commit.sha, "child")
    moved = gh.rest.git.update_ref(owner, name, "heads/fix/bug-42", data={"sha": child, "force": False})
    assert moved.parsed_data.object_.sha == child
    sibling = commit_on(base, "sibling")
    with pytest.raises(RequestFailed) as e:
        gh.rest.git.update_ref(owner, name, "heads/fix/bug-42", data={"sha": sibling, "force": False})
    assert failed(e) == (422, {**failed(e)[1], "message": "Update is not a fast forward"})
    assert fake_gh.head(owner, name, "fix/bug-42") == child
    forced = gh.rest.git.update_ref(owner, name, "heads/fix/bug-42", data={"sha": commit.sha, "force": True})
    assert forced.parsed_data.object_.sha == commit.sha == fake_gh.head(owner, name, "fix/bug-42")

    # what landed in the bare repository
    def g(*args: str) -> str:
        return fake_gh.git(owner, name, *args)

    assert g("log", "--format=%P", "-1", commit.sha).split() == [base]
    assert g("rev-list", "--count", f"{base}..fix/bug-42").strip() == "1"
    status = sorted(g("show", "--no-renames", "--name-status", "--format=", commit.sha).splitlines())
    assert status == sorted(
        [
            "A\tbin/data.bin",
            "A\tnew/nested/dir/file.txt",
            "A\tsrc/link.py",
            "A\ttool.sh",
            "D\tlink_old",
            "D\told.txt",
            "M\tREADME.md",
            "M\tscripts/run.sh",
        ]
    )
    modes = {line.split("\t")[1]: line.split()[0] for line in g("ls-tree", "-r", commit.sha).splitlines()}
    assert modes == {
        "README.md": "100644",
        "bin/data.bin": "100644",
        "keep/deep/file.txt": "100644",
        "new/nested/dir/file.txt": "100644",
        "scripts/run.sh": "100644",
        "src/app.py": "100644",
        "src/link.py": "120000",
        "tool.sh": "100755",
    }
    assert g("cat-file", "-p", f"{commit.sha}:src/link.py") == "app.py"
    assert g("cat-file", "-p", f"{commit.sha}:README.md") == readme
    raw = subprocess.run(
        ["git", f"--git-dir={bare}", "cat-file", "blob", f"{commit.sha}:bin/data.bin"],
        capture_output=True,
        check=True,
    ).stdout
    assert raw == BINARY
    assert g("log", "-1", "--format=%an|%ae|%aI|%cn|%B", commit.sha) == (
        "Dockyard Bot|bot@dockyard.invalid|2026-03-04T05:06:07+00:00|Dockyard Bot|"
        "fix: one commit\n\nbody line\n\n"
    )


def test_tree_errors(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo(FILES)
    gh = installation_client(fake_gh, [name], {"contents": "write"})
    base_tree = gh.rest.git.get_commit(owner, name, fake_gh.head(owner, name) or "").parsed_data.tree.sha
    for entries in (
        [{"path": "missing.txt", "mode": "100644", "type": "blob", "sha": None}],  # nothing to delete
        [{"path": "../escape", "mode": "100644", "type": "blob", "content": "x"}],
        [{"path": "a.txt", "mode": "100644", "type": "blob", "sha": "f" * 40}],  # no such blob
    ):
        with pytest.raises(RequestFailed) as e:
            gh.rest.git.create_tree(owner, name, data={"base_tree": base_tree, "tree": entries})
        assert failed(e)[0] == 422, entries
    with pytest.raises(RequestFailed) as e:
        gh.rest.git.create_tree(
            owner,
            name,
            data={
                "base_tree": "e" * 40,
                "tree": [{"path": "a", "mode": "100644", "type": "blob", "content": "x"}],
            },
        )
    assert failed(e)[0] == 422
    with pytest.raises(RequestFailed) as e:
        gh.rest.git.create_commit(
            owner, name, data={"message": "m", "tree": base_tree, "parents": ["d" * 40]}
        )
    assert failed(e)[0] == 422
    # a folder can be replaced by a file and a file by a folder
    t = gh.rest.git.create_tree(
        owner,
        name,
        data={
            "base_tree": base_tree,
            "tree": [
                {"path": "keep", "mode": "100644", "type": "blob", "content": "now a file\n"},
                {"path": "README.md/inner.txt", "mode": "100644", "type": "blob", "content": "now a dir\n"},
            ],
        },
    ).parsed_data
    paths = {x.path for x in gh.rest.git.get_tree(owner, name, t.sha, recursive="1").parsed_data.tree}
    assert "keep" in paths and "keep/deep/file.txt" not in paths and "README.md/inner.txt" in paths


def test_compare(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo(FILES)
    gh = installation_client(fake_gh, [name], {"contents": "read"})
    base = fake_gh.head(owner, name)
    assert base is not None
    same = gh.rest.repos.compare_commits(owner, name, f"{base}...{base}").parsed_data
    assert same.status == "identical" and same.files == [] and same.total_commits == 0
    head = fake_gh.push_commit(
        owner, name, "main", {"README.md": "changed\n", "added.txt": "new\n"}, deleted=["old.txt"]
    )
    head = fake_gh.push_commit(
        owner, name, "main", {"src/moved.py": "def foo(x):\n    return x + 1\n"}, deleted=["src/app.py"]
    )
    cmp = gh.rest.repos.compare_commits(owner, name, f"{base}...{head}").parsed_data
    assert cmp.status == "ahead" and cmp.ahead_by == 2 and cmp.behind_by == 0 and len(cmp.commits) == 2
    assert cmp.merge_base_commit.sha == base and cmp.commits[-1].sha == head
    files = {f.filename: (f.status, f.previous_filename or None) for f in cmp.files or []}
    assert files == {
        "README.md": ("modified", None),
        "added.txt": ("added", None),
        "old.txt": ("removed", None),
        "src/moved.py": ("renamed", "src/app.py"),
    }
    by_branch = gh.rest.repos.compare_commits(owner, name, f"{base}...main").parsed_data
    assert by_branch.ahead_by == 2
    # diverged
    side = fake_gh.push_commit(owner, name, "side", {"side.txt": "s\n"}, base=base)
    div = gh.rest.repos.compare_commits(owner, name, f"main...{side}").parsed_data
    assert div.status == "diverged" and div.ahead_by == 1 and div.behind_by == 2
    assert [f.filename for f in div.files or []] == ["side.txt"]


# --- pull requests ---------------------------------------------------------------------------------


def test_pull_requests(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo(FILES)
    fake_gh.push_commit(owner, name, "fix/pr", {"README.md": "fixed\n"})
    gh = installation_client(fake_gh, [name], {"contents": "write", "pull_requests": "write"})
    assert gh.rest.pulls.list(owner, name, state="open", head=f"{owner}:fix/pr").parsed_data == []

    resp = gh.rest.pulls.create(
        owner,
        name,
        data={"title": "Fix it", "body": "Because.", "head": "fix/pr", "base": "main", "draft": True},
    )
    assert resp.status_code == 201
    pr = resp.parsed_data
    assert pr.number == 1 and pr.draft is True and pr.state == "open" and pr.title == "Fix it"
    assert pr.html_url == f"{fake_gh.web_url}/{owner}/{name}/pull/1"
    assert pr.head.ref == "fix/pr" and pr.head.sha == fake_gh.head(owner, name, "fix/pr")
    assert pr.base.ref == "main" and pr.commits == 1 and pr.changed_files == 1
    assert pr.user.login == fake_gh.bot_login

    listed = gh.rest.pulls.list(owner, name, state="open", head=f"{owner}:fix/pr").parsed_data
    assert [(p.number, p.html_url, p.draft) for p in listed] == [(1, pr.html_url, True)]
    assert gh.rest.pulls.list(owner, name, state="open", head=f"{owner}:other").parsed_data == []
    assert gh.rest.pulls.get(owner, name, 1).parsed_data.body == "Because."

    with pytest.raises(RequestFailed) as e:
        gh.rest.pulls.create(owner, name, data={"title": "Again", "head": "fix/pr", "base": "main"})
    status, body = failed(e)
    assert status == 422 and body["message"] == "Validation Failed"
    assert body["errors"][0]["message"] == f"A pull request already exists for {owner}:fix/pr."
    fake_gh.create_branch(owner, name, "empty", "main")
    with pytest.raises(RequestFailed) as e:
        gh.rest.pulls.create(owner, name, data={"title": "Nothing", "head": "empty", "base": "main"})
    assert failed(e)[0] == 422
    assert [p.number for p in fake_gh.pulls(owner, name)] == [1]
    # pull_requests read is not enough to open one
    reader = installation_client(fake_gh, [name], {"contents": "read", "pull_requests": "read"})
    assert len(reader.rest.pulls.list(owner, name).parsed_data) == 1
    with pytest.raises(RequestFailed) as e:
        reader.rest.pulls.create(owner, name, data={"title": "x", "head": "empty", "base": "main"})
    assert failed(e)[0] == 403


# --- checks --------------------------------------------------------------------------------------


def test_check_runs_pagination_and_combined_status(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo()
    sha = fake_gh.head(owner, name)
    assert sha is not None
    gh = installation_client(fake_gh, [name], {"checks": "read", "statuses": "read"})

    empty = gh.rest.checks.list_for_ref(owner, name, sha).parsed_data
    assert empty.total_count == 0 and empty.check_runs == []
    combined = gh.rest.repos.get_combined_status_for_ref(owner, name, sha).parsed_data
    assert combined.state == "pending" and combined.total_count == 0 and combined.statuses == []

    runs = [{"name": f"job-{i:03d}", "status": "completed", "conclusion": "success"} for i in range(150)]
    runs[7] = {"name": "job-007", "status": "completed", "conclusion": "failure"}
    runs[9] = {"name": "job-009", "status": "in_progress", "conclusion": None}
    fake_gh.set_checks(owner, name, sha, runs)
    first = gh.rest.checks.list_for_ref(owner, name, sha, per_page=100)
    assert first.parsed_data.total_count == 150 and len(first.parsed_data.check_runs) == 100
    assert 'rel="next"' in first.headers["link"] and 'rel="last"' in first.headers["link"]
    before = len(fake_gh.requests_matching("GET", r"/check-runs$"))
    got = list(
        gh.rest.paginate(
            gh.rest.checks.list_for_ref,
            map_func=lambda r: r.parsed_data.check_runs,
            owner=owner,
            repo=name,
            ref=sha,
            per_page=100,
        )
    )
    assert [r.name for r in got] == [r["name"] for r in runs]
    assert {r.head_sha for r in got} == {sha}
    by_name = {r.name: r for r in got}
    assert by_name["job-007"].conclusion == "failure" and by_name["job-009"].status == "in_progress"
    assert by_name["job-009"].conclusion is None and by_name["job-009"].completed_at is None
    pages = fake_gh.requests_matching("GET", r"/check-runs$")[before:]
    # (page 1 was fetched just before: githubkit revalidates it with If-None-Match and gets a 304)
    assert [(r.query.get("page", "1"), r.status) for r in pages] == [("1", 304), ("2", 200)]
    # by branch name too
    assert gh.rest.checks.list_for_ref(owner, name, "main", per_page=1).parsed_data.total_count == 150

    fake_gh.set_statuses(
        owner,
        name,
        sha,
        [
            {"context": "ci/a", "state": "success"},
            {"context": "ci/b", "state": "failure", "description": "red"},
        ],
    )
    combined = gh.rest.repos.get_combined_status_for_ref(owner, name, sha, per_page=100).parsed_data
    assert combined.state == "failure" and combined.total_count == 2
    assert [(s.context, s.state) for s in combined.statuses] == [("ci/a", "success"), ("ci/b", "failure")]
    fake_gh.set_statuses(owner, name, sha, [{"context": "ci/a", "state": "success"}])
    assert gh.rest.repos.get_combined_status_for_ref(owner, name, sha).parsed_data.state == "success"


def test_scripted_checks_and_revalidation(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo()
    sha = fake_gh.head(owner, name)
    assert sha is not None
    gh = installation_client(fake_gh, [name], {"checks": "read"})
    fake_gh.script_checks(
        owner,
        name,
        sha,
        [
            (0.0, [{"name": "ci", "status": "queued", "conclusion": None}]),
            (0.8, [{"name": "ci", "status": "completed", "conclusion": "success"}]),
        ],
    )
    a = gh.rest.checks.list_for_ref(owner, name, sha).parsed_data
    b = gh.rest.checks.list_for_ref(owner, name, sha).parsed_data  # same content: answered 304 and reused
    assert (
        [(r.status, r.conclusion) for r in a.check_runs]
        == [("queued", None)]
        == [(r.status, r.conclusion) for r in b.check_runs]
    )
    assert [r.status for r in fake_gh.requests_matching("GET", r"/check-runs$")][-2:] == [200, 304]
    deadline = time.monotonic() + 5
    while True:
        runs = gh.rest.checks.list_for_ref(owner, name, sha).parsed_data.check_runs
        if runs[0].status == "completed" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [(r.status, r.conclusion) for r in runs] == [("completed", "success")]
    assert runs[0].id == a.check_runs[0].id  # the same run, moved on


# --- faults --------------------------------------------------------------------------------------


def test_faults_and_retries(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo()
    gh = installation_client(fake_gh, [name], {"contents": "read"})
    path = rf"^/repos/{owner}/{name}$"
    assert gh.rest.repos.get(owner, name).parsed_data.name == name  # token issued before the faults

    fake_gh.inject("GET", path, 500)
    assert gh.rest.repos.get(owner, name).parsed_data.name == name
    # (a success is a 200 or, revalidating githubkit's HTTP cache, a 304)
    log = fake_gh.requests_matching("GET", path)[-2:]
    assert [(r.status, r.fault) for r in log] in ([(500, True), (200, False)], [(500, True), (304, False)])

    fake_gh.inject_secondary_rate_limit("GET", path, retry_after=1)
    t0 = time.monotonic()
    assert gh.rest.repos.get(owner, name).parsed_data.name == name
    assert time.monotonic() - t0 >= 0.9
    assert [r.status for r in fake_gh.requests_matching("GET", path)][-2:] in ([403, 200], [403, 304])

    plain = installation_client(fake_gh, [name], {"contents": "read"}, auto_retry=False)
    fake_gh.inject_secondary_rate_limit("GET", path, retry_after=1)
    with pytest.raises(SecondaryRateLimitExceeded) as sec:
        plain.rest.repos.get(owner, name)
    assert sec.value.retry_after == timedelta(seconds=1)
    fake_gh.inject_primary_rate_limit("GET", path, reset_in=30)
    with pytest.raises(PrimaryRateLimitExceeded) as prim:
        plain.rest.repos.get(owner, name)
    assert prim.value.response.headers["x-ratelimit-remaining"] == "0"
    assert timedelta(seconds=25) < prim.value.retry_after <= timedelta(seconds=31)
    fake_gh.inject("*", path, 502, times=2, body="<html>bad gateway</html>")
    fake_gh.clear_faults()
    assert plain.rest.repos.get(owner, name).parsed_data.name == name


# --- git smart HTTP ------------------------------------------------------------------------------


def _basic(token: str) -> str:
    return "Authorization: Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()


def test_clone_over_smart_http(fake_gh: FakeGitHub, make_github_repo: MakeRepo, tmp_path: Path) -> None:
    owner, name = make_github_repo(FILES, executable={"scripts/run.sh"}, symlinks={"link": "src/app.py"})
    _, other = make_github_repo()
    url = fake_gh.clone_url(owner, name)
    token = issue_token(fake_gh, [name], {"contents": "read"})

    dest = tmp_path / "clone"
    run_git("-c", f"http.extraHeader={_basic(token)}", "clone", "-q", url, str(dest))
    assert (dest / "src/app.py").read_text() == FILES["src/app.py"]
    assert os.access(dest / "scripts/run.sh", os.X_OK)
    assert os.readlink(dest / "link") == "src/app.py"
    assert run_git("rev-parse", "HEAD", cwd=dest).stdout.strip() == fake_gh.head(owner, name)
    clone_reqs = fake_gh.requests_matching(None, rf"^/{owner}/{name}\.git/")
    assert clone_reqs and all(r.auth == "basic" and r.status == 200 for r in clone_reqs)

    # a commit by sha (not at a branch tip), shallow, as a job clone does
    hidden = fake_gh.push_commit(owner, name, "tmp", {"later.txt": "later\n"})
    fake_gh.git(owner, name, "update-ref", "-d", "refs/heads/tmp")
    shallow = tmp_path / "shallow"
    run_git("init", "-q", str(shallow))
    run_git(
        "-c", f"http.extraHeader={_basic(token)}", "fetch", "-q", "--depth", "1", url, hidden, cwd=shallow
    )
    assert run_git("cat-file", "-p", "FETCH_HEAD:later.txt", cwd=shallow).stdout == "later\n"

    # no token, another repo's token, a token without contents, a bogus token: all refused
    nope = run_git("clone", "-q", url, str(tmp_path / "anon"), check=False)
    assert nope.returncode != 0
    assert fake_gh.requests_matching("GET", rf"^/{owner}/{name}\.git/info/refs$")[-1].status == 401
    other_token = issue_token(fake_gh, [other], {"contents": "read"})
    no_contents = issue_token(fake_gh, [name], {"checks": "read"})
    for i, bad in enumerate((other_token, no_contents, "ghs_" + "y" * 36)):
        res = run_git(
            "-c",
            f"http.extraHeader={_basic(bad)}",
            "clone",
            "-q",
            url,
            str(tmp_path / f"bad{i}"),
            check=False,
        )
        assert res.returncode != 0, bad
    assert [r.status for r in fake_gh.requests_matching("GET", r"info/refs$")][-3:] == [404, 404, 401]

    # pushing is refused
    (dest / "README.md").write_text("pushed\n")
    run_git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "push me", cwd=dest)
    push = run_git(
        "-c", f"http.extraHeader={_basic(token)}", "push", "-q", url, "HEAD:main", cwd=dest, check=False
    )
    assert push.returncode != 0
    pushes = [r for r in fake_gh.requests if "receive-pack" in r.path + r.query.get("service", "")]
    assert pushes and pushes[-1].status == 403
    assert fake_gh.head(owner, name) == run_git("rev-parse", "HEAD~1", cwd=dest).stdout.strip()


# --- the async client, as the service uses it ------------------------------------------------------


async def test_async_client_flow(fake_gh: FakeGitHub, make_github_repo: MakeRepo) -> None:
    owner, name = make_github_repo(FILES)
    app = app_client(fake_gh)
    inst = (await app.rest.apps.async_get_repo_installation(owner, name)).parsed_data
    gh = app.with_auth(
        AppAuthStrategy(fake_gh.app_id, fake_gh.private_key_pem).as_installation(
            inst.id,
            repositories=[name],
            permissions={"contents": "write", "checks": "read", "statuses": "read"},
        )
    )
    ref = (await gh.rest.git.async_get_ref(owner, name, "heads/main")).parsed_data
    tree = (await gh.rest.git.async_get_commit(owner, name, ref.object_.sha)).parsed_data.tree.sha
    new_tree = (
        await gh.rest.git.async_create_tree(
            owner,
            name,
            data={
                "base_tree": tree,
                "tree": [{"path": "a.txt", "mode": "100644", "type": "blob", "content": "a\n"}],
            },
        )
    ).parsed_data.sha
    commit = (
        await gh.rest.git.async_create_commit(
            owner, name, data={"message": "async", "tree": new_tree, "parents": [ref.object_.sha]}
        )
    ).parsed_data
    assert commit.author.name == fake_gh.bot_login  # GitHub's default author: the App's bot
    assert commit.message == "async"  # stored verbatim, no newline added
    await gh.rest.git.async_create_ref(owner, name, data={"ref": "refs/heads/async", "sha": commit.sha})
    fake_gh.set_checks(
        owner, name, commit.sha, [{"name": "ci", "status": "completed", "conclusion": "success"}]
    )
    runs = (
        await gh.rest.checks.async_list_for_ref(owner, name, commit.sha, per_page=100, page=1)
    ).parsed_data
    assert runs.total_count == 1 and runs.check_runs[0].conclusion == "success"
    status = (
        await gh.rest.repos.async_get_combined_status_for_ref(owner, name, commit.sha, per_page=100)
    ).parsed_data
    assert status.state == "pending" and status.total_count == 0
    assert len([t for t in fake_gh.tokens if t.repositories == frozenset({name.lower()})]) == 1
