"""list_directory: depth, repo-relative paths, types, sizes, `.git` hidden."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker

TOP_LEVEL = {
    "README.md": "file", "crlf.txt": "file", "ünï": "dir", "bin": "dir", "scripts": "dir", "src": "dir",
    "a": "dir", "tabs.txt": "file", "case.txt": "file", "needles": "dir", "big.txt": "file",
    "later.txt": "file", "link_in": "symlink", "link_out": "symlink", "dir_out": "symlink",
}


def _entries(api, job, **body):
    got = api.tool_ok(job["id"], "list_directory", **body)
    return got, {e["path"]: e for e in got["entries"]}


def test_depth_one_lists_direct_children_only(api, job):
    got, entries = _entries(api, job, path=".", depth=1)
    assert {p: e["type"] for p, e in entries.items()} == TOP_LEVEL
    assert got["truncated"] is False
    assert len(got["entries"]) == len(entries), "an entry is listed twice"


def test_default_is_the_root_at_depth_one(api, job):
    _, entries = _entries(api, job)
    assert set(entries) == set(TOP_LEVEL)


def test_git_folder_never_listed(api, job):
    _, entries = _entries(api, job, path=".", depth=20)
    assert not [p for p in entries if p == ".git" or p.startswith(".git/") or "/.git" in p]


def test_deeper_listing_includes_nested_entries(api, job):
    _, entries = _entries(api, job, path=".", depth=3)
    assert entries["a/b"]["type"] == "dir"
    assert entries["a/b/c"]["type"] == "dir"
    assert entries["a/b/sibling.md"]["type"] == "file"
    assert entries["src/util/helpers.py"]["type"] == "file"
    assert "a/b/c/deep.txt" not in entries  # depth 4
    _, deeper = _entries(api, job, path=".", depth=4)
    assert deeper["a/b/c/deep.txt"]["type"] == "file"


def test_paths_are_repo_relative_without_dot_prefix(api, job):
    _, entries = _entries(api, job, path=".", depth=5)
    for p in entries:
        assert not p.startswith(("./", "/", "workspace")), p


def test_file_sizes_are_reported(api, job, fixture_repo):
    _, entries = _entries(api, job, path=".", depth=3)
    for name in ("README.md", "big.txt", "crlf.txt", "src/app.py", "ünï/cödé.py", "bin/blob.bin"):
        assert entries[name]["size"] == len(fixture_repo.files[name]), name


def test_symlinks_are_not_followed(api, job):
    _, entries = _entries(api, job, path=".", depth=3)
    assert entries["dir_out"]["type"] == "symlink"
    assert not [p for p in entries if p.startswith("dir_out/")], "listing followed a link out of the tree"


def test_subfolder_listing_has_repo_relative_paths(api, job):
    got, entries = _entries(api, job, path="src", depth=1)
    assert got["path"] == "src"
    assert set(entries) == {"src/app.py", "src/util"}
    assert entries["src/util"]["type"] == "dir"


def test_subfolder_via_symlink_inside_tree_or_trailing_slash(api, job):
    _, entries = _entries(api, job, path="src/", depth=1)
    assert set(entries) == {"src/app.py", "src/util"}


def test_missing_folder_is_404(api, job):
    api.error(api.tool(job["id"], "list_directory", path="nope"), 404, "file_not_found")


def test_listing_a_file_is_an_error(api, job):
    api.error(api.tool(job["id"], "list_directory", path="README.md"), (400, 409))


def test_depth_zero_is_invalid(api, job):
    api.error(api.tool(job["id"], "list_directory", path=".", depth=0), 400, "invalid_request")
