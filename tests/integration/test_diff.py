"""GET /v1/jobs/{id}/diff: the workspace against base_sha — statuses, modes, binary, patch, stats."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


def _diff(api, job):
    r = api.get(f"/v1/jobs/{job['id']}/diff")
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def changed(api, job, dexec, fixture_repo):
    """One job with one change of every kind; returns (job, diff)."""
    jid = job["id"]
    api.write(jid, "new_dir/added.txt", "one\ntwo\n")  # added, +2
    api.tool_ok(jid, "replace_in_file", path="src/app.py", old="return x + 1", new="return x + 2")  # +1 -1
    dexec.ok(job, ["rm", "/workspace/README.md"])  # deleted, -4
    dexec.ok(job, ["chmod", "755", "/workspace/tabs.txt"])  # mode only
    api.write(jid, "data.bin", "\x00\x01\x02binary\x00")  # added, binary
    dexec.ok(job, "printf 'x\\000y' > /workspace/bin/blob.bin")  # modified binary
    api.write(jid, "scripts/run.sh", "#!/bin/sh\necho changed\n")  # +1 -1, mode stays 100755
    dexec.ok(job, ["ln", "-s", "src/app.py", "/workspace/new_link"])  # added symlink, +1
    api.write(jid, "ünï/nëw file.txt", "unicode\n")  # added, +1, path must come back unquoted
    return job, _diff(api, job)


def test_fresh_job_has_an_empty_diff(api, make_job):
    fresh = make_job()
    got = _diff(api, fresh)
    assert got["base_sha"] == fresh["base_sha"]
    assert got["files"] == []
    assert got["patch"] == ""
    assert got["stats"] == {"files": 0, "additions": 0, "deletions": 0}


def test_statuses(changed):
    _, diff = changed
    status = {f["path"]: f["status"] for f in diff["files"]}
    assert status == {
        "new_dir/added.txt": "added",
        "src/app.py": "modified",
        "README.md": "deleted",
        "tabs.txt": "modified",
        "data.bin": "added",
        "bin/blob.bin": "modified",
        "scripts/run.sh": "modified",
        "new_link": "added",
        "ünï/nëw file.txt": "added",
    }


def test_modes(changed):
    _, diff = changed
    mode = {f["path"]: f["mode"] for f in diff["files"]}
    assert mode["tabs.txt"] == "100755"
    assert mode["scripts/run.sh"] == "100755"
    assert mode["new_dir/added.txt"] == "100644"
    assert mode["src/app.py"] == "100644"
    assert mode["new_link"] == "120000"


def test_binary_flags(changed):
    _, diff = changed
    binary = {f["path"]: f["binary"] for f in diff["files"]}
    assert binary["data.bin"] is True
    assert binary["bin/blob.bin"] is True
    assert binary["src/app.py"] is False
    assert binary["new_dir/added.txt"] is False


def test_patch_is_a_unified_diff_of_the_changes(changed):
    _, diff = changed
    patch = diff["patch"]
    assert "diff --git a/src/app.py b/src/app.py" in patch
    assert "--- a/src/app.py\n+++ b/src/app.py\n" in patch
    assert "@@ " in patch
    assert "-    return x + 1\n" in patch
    assert "+    return x + 2\n" in patch
    assert "+++ b/new_dir/added.txt\n" in patch and "+one\n+two\n" in patch
    assert "deleted file mode 100644" in patch and "-hello dockyard\n" in patch
    assert "old mode 100644\nnew mode 100755" in patch
    assert "new file mode 120000" in patch and "+src/app.py\n\\ No newline at end of file" in patch
    assert "ünï/nëw file.txt" in patch and "+unicode\n" in patch


def test_stats(changed, fixture_repo):
    _, diff = changed
    readme_lines = fixture_repo.files["README.md"].count(b"\n")
    assert diff["stats"] == {
        "files": 9,
        "additions": 2 + 1 + 1 + 1 + 1,
        "deletions": 1 + readme_lines + 1,
    }


def test_per_file_counts(changed, fixture_repo):
    _, diff = changed
    counts = {f["path"]: (f["additions"], f["deletions"]) for f in diff["files"]}
    assert counts == {
        "new_dir/added.txt": (2, 0),
        "src/app.py": (1, 1),
        "README.md": (0, fixture_repo.files["README.md"].count(b"\n")),
        "tabs.txt": (0, 0),
        "data.bin": (0, 0),
        "bin/blob.bin": (0, 0),
        "scripts/run.sh": (1, 1),
        "new_link": (1, 0),
        "ünï/nëw file.txt": (1, 0),
    }
    assert sum(a for a, _ in counts.values()) == diff["stats"]["additions"]


def test_diff_is_against_base_sha(changed, fixture_repo):
    job, diff = changed
    assert diff["base_sha"] == job["base_sha"] == fixture_repo.sha


def test_diff_does_not_move_the_base(api, changed):
    job, first = changed
    again = _diff(api, job)
    assert again["files"] == first["files"]
    assert again["stats"] == first["stats"]


def test_reverting_a_change_drops_it_from_the_diff(api, make_job, fixture_repo):
    job = make_job()
    api.write(job["id"], "crlf.txt", "changed\n")
    assert [f["path"] for f in _diff(api, job)["files"]] == ["crlf.txt"]
    api.write(job["id"], "crlf.txt", fixture_repo.text("crlf.txt"))
    got = _diff(api, job)
    assert got["files"] == [] and got["patch"] == ""


def test_auditors_read_the_diff_and_anonymous_callers_do_not(auditor_api, anon_api, api, job):
    mine = api.get(f"/v1/jobs/{job['id']}/diff")
    theirs = auditor_api.get(f"/v1/jobs/{job['id']}/diff")
    assert theirs.status_code == 200 and theirs.json()["patch"] == mine.json()["patch"]
    anon_api.error(anon_api.get(f"/v1/jobs/{job['id']}/diff"), 401, "unauthorized")
