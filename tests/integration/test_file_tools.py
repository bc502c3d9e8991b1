"""The tools real commits need: delete, move, modes, ignored paths, search over what git tracks.

The repository has the shapes upstream projects have: a .gitignore with an ignored folder that
still holds a tracked file, an executable script, a symlink, a minified file with one long line.
Every change is checked where it matters: in the job's diff (what a commit would carry).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker

LONG = "x = [" + ", ".join(str(i) for i in range(3000)) + "]; needle_here = 1; " + "y" * 5000 + "\n"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def shaped_repo(tmp_path_factory: pytest.TempPathFactory) -> str:
    repo = tmp_path_factory.mktemp("shaped") / "proj"
    files = {
        ".gitignore": "build/\n*.log\nnode_modules/\n",
        "src/app.py": "def main():\n    return 'needle'\n",
        "build/keep.txt": "tracked although ignored: needle\n",
        "scripts/run.sh": "#!/bin/sh\necho needle\n",
        "docs/guide.md": "# guide\n",
        "dist/app.min.js": LONG,
    }
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    (repo / "scripts/run.sh").chmod(0o755)
    (repo / "link-to-guide").symlink_to("docs/guide.md")
    _git(repo.parent, "init", "-q", "-b", "main", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "add", "-f", "build/keep.txt")
    _git(repo, "commit", "-qm", "shaped")
    return f"file://{repo}"


@pytest.fixture()
def sjob(make_job: Any, shaped_repo: str) -> dict[str, Any]:
    return make_job(clone_url=shaped_repo)  # type: ignore[no-any-return]


def _diff(api: Any, job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    r = api.get(f"/v1/jobs/{job['id']}/diff")
    assert r.status_code == 200, r.text
    return {f["path"]: f for f in r.json()["files"]}


def test_delete_file_reaches_the_diff_and_absent_is_404(api, sjob):
    got = api.tool_ok(sjob["id"], "delete_file", path="docs/guide.md")
    assert got == {"path": "docs/guide.md", "deleted": True, "timed_out": False, "oom_killed": False}
    assert _diff(api, sjob)["docs/guide.md"]["status"] == "deleted"
    api.error(api.tool(sjob["id"], "delete_file", path="docs/guide.md"), 404, "file_not_found")
    api.error(api.tool(sjob["id"], "read_file", path="docs/guide.md"), 404, "file_not_found")


def test_delete_a_symlink_removes_the_link_never_its_target(api, sjob, dexec):
    api.tool_ok(sjob["id"], "delete_file", path="link-to-guide")
    assert dexec.ok(sjob, "cat /workspace/docs/guide.md") == "# guide\n"
    assert _diff(api, sjob)["link-to-guide"]["status"] == "deleted"


def test_delete_a_folder_is_refused_and_changes_nothing(api, sjob):
    api.error(api.tool(sjob["id"], "delete_file", path="src"), 400, "is_a_directory")
    assert api.read(sjob["id"], "src/app.py")["content"].startswith("def main")
    api.error(api.tool(sjob["id"], "delete_file", path=".git/config"), 400, "path_outside_workspace")


def test_move_file_keeps_bytes_and_mode_and_refuses_to_clobber(api, sjob, dexec):
    got = api.tool_ok(sjob["id"], "move_file", **{"from": "scripts/run.sh", "to": "bin/run"})
    assert got["from"] == "scripts/run.sh" and got["to"] == "bin/run" and got["ignored"] is False
    assert got["mode"] == "100755"
    diff = _diff(api, sjob)
    assert diff["scripts/run.sh"]["status"] == "deleted"
    assert diff["bin/run"]["status"] == "added" and diff["bin/run"]["mode"] == "100755"
    assert api.read(sjob["id"], "bin/run")["content"] == "#!/bin/sh\necho needle\n"
    api.error(
        api.tool(sjob["id"], "move_file", **{"from": "bin/run", "to": "src/app.py"}), 409, "file_exists"
    )
    assert api.read(sjob["id"], "src/app.py")["content"].startswith("def main")  # untouched
    api.tool_ok(sjob["id"], "move_file", **{"from": "bin/run", "to": "src/app.py", "overwrite": True})
    assert api.read(sjob["id"], "src/app.py")["content"] == "#!/bin/sh\necho needle\n"
    api.error(api.tool(sjob["id"], "move_file", **{"from": "nope", "to": "x"}), 404, "file_not_found")
    api.error(api.tool(sjob["id"], "move_file", **{"from": "src", "to": "x"}), 400, "is_a_directory")


def test_write_modes_executable_true_false_and_null_keeps(api, sjob):
    new = api.tool_ok(sjob["id"], "write_file", path="tools/new.sh", content="#!/bin/sh\n", executable=True)
    assert new["created"] is True and new["mode"] == "100755"
    plain = api.tool_ok(sjob["id"], "write_file", path="notes.txt", content="n\n")
    assert plain["mode"] == "100644"
    kept = api.tool_ok(sjob["id"], "write_file", path="scripts/run.sh", content="#!/bin/sh\necho 2\n")
    assert kept["mode"] == "100755" and kept["created"] is False  # null keeps the existing mode
    off = api.tool_ok(sjob["id"], "write_file", path="scripts/run.sh", content="#!/bin/sh\necho 2\n",
                      executable=False)
    assert off["mode"] == "100644"
    diff = _diff(api, sjob)
    assert diff["tools/new.sh"]["mode"] == "100755"
    assert diff["scripts/run.sh"]["mode"] == "100644" and diff["scripts/run.sh"]["old_mode"] == "100755"
    chmod_only = api.tool_ok(sjob["id"], "write_file", path="src/app.py",
                             content="def main():\n    return 'needle'\n", executable=True)
    assert chmod_only["mode"] == "100755"
    assert _diff(api, sjob)["src/app.py"]["old_mode"] == "100644"  # a mode change alone is a change


def test_ignored_paths_are_said_and_stay_out_of_the_diff(api, sjob):
    log = api.tool_ok(sjob["id"], "write_file", path="debug.log", content="x\n")
    assert log["ignored"] is True
    dep = api.tool_ok(sjob["id"], "write_file", path="node_modules/a/index.js", content="x\n")
    assert dep["ignored"] is True
    tracked = api.tool_ok(sjob["id"], "write_file", path="build/keep.txt", content="changed\n")
    assert tracked["ignored"] is False  # tracked: a change to it is in the diff whatever .gitignore says
    moved = api.tool_ok(sjob["id"], "move_file", **{"from": "docs/guide.md", "to": "build/guide.md"})
    assert moved["ignored"] is True
    diff = _diff(api, sjob)
    assert "debug.log" not in diff and "node_modules/a/index.js" not in diff and "build/guide.md" not in diff
    assert diff["build/keep.txt"]["status"] == "modified"


def test_search_covers_tracked_files_under_ignored_folders_and_not_untracked_ignored(api, sjob):
    api.tool_ok(sjob["id"], "write_file", path="node_modules/dep.js", content="needle\n")
    got = api.tool_ok(sjob["id"], "search", pattern="needle", fixed_string=True)
    paths = {m["path"] for m in got["matches"]}
    assert {"src/app.py", "build/keep.txt", "scripts/run.sh", "dist/app.min.js"} <= paths
    assert "node_modules/dep.js" not in paths  # ignored and untracked: not the repository's
    globbed = api.tool_ok(sjob["id"], "search", pattern="needle", glob="*.txt")
    assert {m["path"] for m in globbed["matches"]} == {"build/keep.txt"}


def test_a_match_on_a_long_line_is_inside_its_text_with_its_column(api, sjob):
    got = api.tool_ok(sjob["id"], "search", pattern="needle_here", path="dist")
    (m,) = got["matches"]
    assert "needle_here" in m["text"] and len(m["text"]) <= 2000
    assert m["column"] == LONG.index("needle_here") + 1
    assert LONG[m["column"] - 1 :].startswith("needle_here")
