"""Path confinement: nothing outside /workspace or inside .git is read, written or listed."""

from __future__ import annotations

import secrets

import pytest

pytestmark = pytest.mark.docker

ESCAPES = [
    "../etc/passwd",
    "/etc/passwd",
    "a/../../x",
    "link_out",
    "dir_out/passwd",
    ".git/config",
    ".git",
    "src/../.git/HEAD",
    "./.git/HEAD",
    "src/../../workspace/../etc/hostname",
]
WRITE_ESCAPES = [
    *ESCAPES,
    "dir_out/newfile",
    "dir_out/new/nested/file",
    ".git/hooks/pre-commit",
    "../outside-new.txt",
    "/tmp/planted.txt",
]
LIST_ESCAPES = [
    "../", "..", "/", "/etc", "dir_out", "dir_out/", ".git", ".git/refs", "src/../.git", "a/../../",
]
SEARCH_ESCAPES = ["../", "/etc", "dir_out", ".git", "src/../.git"]


def _snapshot(dexec, job) -> str:
    return dexec.ok(
        job,
        "find /workspace /tmp -xdev 2>/dev/null | sort; "
        "md5sum /workspace/.git/config /workspace/.git/HEAD /workspace/README.md",
    )


@pytest.mark.parametrize("path", ESCAPES)
def test_read_file_refuses_escapes(api, job, path):
    r = api.tool(job["id"], "read_file", path=path)
    err = api.error(r, 400, "path_outside_workspace")
    assert "root:" not in err["message"] + str(err["details"]), "file content leaked into the error"


@pytest.mark.parametrize("path", WRITE_ESCAPES)
def test_write_file_refuses_escapes_and_writes_nothing(api, job, dexec, path):
    marker = f"PLANTED-{secrets.token_hex(8)}"
    before = _snapshot(dexec, job)
    r = api.tool(job["id"], "write_file", path=path, content=marker + "\n")
    api.error(r, 400, "path_outside_workspace")
    assert _snapshot(dexec, job) == before, "a refused write changed the workspace or /tmp"
    _, out = dexec(job, f"grep -rl {marker} /workspace /tmp /etc 2>/dev/null")
    assert out.strip() == "", f"the refused content was written somewhere: {out}"


REPLACE_ESCAPES = ["link_out", "dir_out/passwd", ".git/config", "src/../.git/HEAD", "/etc/passwd"]


@pytest.mark.parametrize("path", REPLACE_ESCAPES)
def test_replace_in_file_refuses_escapes(api, job, dexec, path):
    before = _snapshot(dexec, job)
    r = api.tool(job["id"], "replace_in_file", path=path, old="root", new="toor")
    api.error(r, 400, "path_outside_workspace")
    assert _snapshot(dexec, job) == before


@pytest.mark.parametrize("path", LIST_ESCAPES)
def test_list_directory_refuses_escapes(api, job, path):
    r = api.tool(job["id"], "list_directory", path=path, depth=2)
    api.error(r, 400, "path_outside_workspace")


@pytest.mark.parametrize("path", SEARCH_ESCAPES)
def test_search_refuses_escapes(api, job, path):
    r = api.tool(job["id"], "search", pattern="root", path=path)
    api.error(r, 400, "path_outside_workspace")


def test_search_glob_cannot_reach_outside(api, job):
    got = api.tool_ok(job["id"], "search", pattern="root:", glob="dir_out/**")
    assert got["matches"] == []
    got = api.tool_ok(job["id"], "search", pattern="root:x:0:0")
    assert got["matches"] == [], "search followed a symlink out of the workspace"


@pytest.mark.parametrize("tool", ["read_file", "write_file", "list_directory"])
def test_nul_byte_in_path_is_invalid_request(api, job, tool):
    body = {"path": "src/app.py\x00.txt"}
    if tool == "write_file":
        body["content"] = "x"
    api.error(api.tool(job["id"], tool, **body), 400, "invalid_request")


@pytest.mark.parametrize("tool", ["read_file", "write_file", "list_directory", "search"])
def test_overlong_path_is_invalid_request(api, job, tool):
    body = {"path": "a" * 5000}
    if tool == "write_file":
        body["content"] = "x"
    if tool == "search":
        body["pattern"] = "x"
    api.error(api.tool(job["id"], tool, **body), 400, "invalid_request")


def test_long_valid_path_is_a_client_error_not_500(api, job):
    path = "abcdefghi/" * 399 + "file.txt"
    assert 3990 < len(path) <= 4096
    api.error(api.tool(job["id"], "read_file", path=path), (400, 404))
    api.error(api.tool(job["id"], "list_directory", path=path.rsplit("/", 1)[0]), (400, 404))


def test_long_valid_path_write_is_not_500(api, job):
    path = "longw/" + "abcdefghi/" * 398 + "file.txt"
    r = api.tool(job["id"], "write_file", path=path, content="deep\n")
    if r.status_code != 200:
        api.error(r, (400, 413))
    else:
        assert api.read(job["id"], path)["content"] == "deep\n"


def test_empty_path_is_invalid_request(api, job):
    api.error(api.tool(job["id"], "read_file", path=""), 400, "invalid_request")
