"""Claude's text editor tool at `POST /v1/jobs/{id}/tools/str_replace_based_edit_tool`: its input
verbatim, each command against a real job, the model's mistakes as `is_error` results, caller
errors as HTTP errors, and the underlying tool calls in the audit log."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.docker

EDIT = "str_replace_based_edit_tool"
NUMBERED = re.compile(r"^ *(\d+)\t(.*)$")


def edit(api: Api, job: dict[str, Any], **body: Any) -> dict[str, Any]:
    got = api.tool_ok(job["id"], EDIT, **body)
    assert set(got) == {"content", "is_error"}, got
    return got


def ok(api: Api, job: dict[str, Any], **body: Any) -> str:
    got = edit(api, job, **body)
    assert got["is_error"] is False, got["content"]
    return str(got["content"])


def refused(api: Api, job: dict[str, Any], **body: Any) -> str:
    got = edit(api, job, **body)
    assert got["is_error"] is True, got["content"]
    return str(got["content"])


def numbered(text: str) -> dict[int, str]:
    return {int(m.group(1)): m.group(2) for m in map(NUMBERED.match, text.splitlines()) if m}


def test_view_a_file_with_line_numbers(api: Api, job: dict[str, Any]) -> None:
    text = ok(api, job, command="view", path="/workspace/src/app.py")
    lines = numbered(text)
    assert lines[1] == "import os" and lines[4] == "def foo(x):" and lines[11] == "    return value"
    assert max(lines) == 11
    assert "/workspace/src/app.py" in text.splitlines()[0]
    assert numbered(ok(api, job, command="view", path="src/app.py")) == lines  # relative: the same file


def test_view_a_range_and_to_the_end(api: Api, job: dict[str, Any]) -> None:
    lines = numbered(ok(api, job, command="view", path="/workspace/src/app.py", view_range=[4, 5]))
    assert lines == {4: "def foo(x):", 5: "    return x + 1"}
    tail = numbered(ok(api, job, command="view", path="/workspace/src/app.py", view_range=[10, -1]))
    assert tail == {10: "    other = axb(2)", 11: "    return value"}
    past = refused(api, job, command="view", path="src/app.py", view_range=[40, 41])
    assert "40" in past and "11 lines" in past
    assert "view_range" in refused(api, job, command="view", path="src/app.py", view_range=[5, 2])


def test_view_a_folder_two_levels_without_hidden_items(api: Api, job: dict[str, Any]) -> None:
    api.write(job["id"], "a/.hidden/secret.txt", "x\n")
    api.write(job["id"], "a/.env", "X=1\n")
    text = ok(api, job, command="view", path="/workspace/a")
    listed = text.splitlines()[1:]
    assert "/workspace/a/b/" in listed and "/workspace/a/b/sibling.md" in listed
    assert "/workspace/a/b/c/" in listed and "/workspace/a/b/c/deep.txt" not in listed  # two levels
    assert not any("/." in p for p in listed), listed
    root = ok(api, job, command="view", path="/workspace").splitlines()[1:]
    assert "/workspace/src/" in root and "/workspace/src/app.py" in root and "/workspace/README.md" in root
    assert not any(p.startswith("/workspace/.git") for p in root)
    assert (
        "src/app.py" in ok(api, job, command="view", path=".").splitlines()[1:]
    )  # relative in, relative out
    assert "directory" in refused(api, job, command="view", path="/workspace/src", view_range=[1, 2])


def test_create_a_file_then_overwrite_it(api: Api, job: dict[str, Any]) -> None:
    text = ok(api, job, command="create", path="/workspace/new/pkg/mod.py", file_text="X = 1\n")
    assert "created" in text
    assert api.read(job["id"], "new/pkg/mod.py")["content"] == "X = 1\n"
    again = ok(api, job, command="create", path="new/pkg/mod.py", file_text="X = 2\n")
    assert "overwritten" in again
    assert api.read(job["id"], "new/pkg/mod.py")["content"] == "X = 2\n"


def test_str_replace_exactly_once(api: Api, job: dict[str, Any]) -> None:
    api.write(job["id"], "e/once.py", "def f():\n    return 1\n\n\ndef g():\n    return 2\n")
    text = ok(
        api, job, command="str_replace", path="/workspace/e/once.py", old_str="return 2", new_str="return 42"
    )
    assert numbered(text).get(6) == "    return 42"
    assert api.read(job["id"], "e/once.py")["content"].endswith("def g():\n    return 42\n")


def test_str_replace_no_match_and_two_matches_change_nothing(api: Api, job: dict[str, Any]) -> None:
    before = "a = 1\nb = 1\nc = 2\n"
    api.write(job["id"], "e/twice.py", before)
    none = refused(api, job, command="str_replace", path="e/twice.py", old_str="z = 9", new_str="z = 0")
    assert "No replacement was performed" in none and "no match" in none
    two = refused(api, job, command="str_replace", path="e/twice.py", old_str="= 1", new_str="= 3")
    assert "found 2 matches" in two and "lines 1, 2" in two
    assert api.read(job["id"], "e/twice.py")["content"] == before
    # new_str left out: the text is deleted
    ok(api, job, command="str_replace", path="e/twice.py", old_str="c = 2\n")
    assert api.read(job["id"], "e/twice.py")["content"] == "a = 1\nb = 1\n"


def test_insert_at_the_start_and_after_line_n(api: Api, job: dict[str, Any]) -> None:
    api.write(job["id"], "e/ins.py", "one\ntwo\nthree\n")
    ok(api, job, command="insert", path="/workspace/e/ins.py", insert_line=0, insert_text="zero")
    assert api.read(job["id"], "e/ins.py")["content"] == "zero\none\ntwo\nthree\n"
    text = ok(api, job, command="insert", path="e/ins.py", insert_line=2, insert_text="one-and-a-half\n")
    assert numbered(text)[3] == "one-and-a-half"
    assert api.read(job["id"], "e/ins.py")["content"] == "zero\none\none-and-a-half\ntwo\nthree\n"
    ok(api, job, command="insert", path="e/ins.py", insert_line=5, insert_text="four")  # at the end
    assert api.read(job["id"], "e/ins.py")["content"].endswith("three\nfour\n")
    assert "[0, 6]" in refused(api, job, command="insert", path="e/ins.py", insert_line=9, insert_text="x")
    # the older docs' name for the text is accepted
    ok(api, job, command="insert", path="e/ins.py", insert_line=0, new_str="# head")
    assert api.read(job["id"], "e/ins.py")["content"].startswith("# head\nzero\n")


def test_insert_keeps_crlf(api: Api, job: dict[str, Any]) -> None:
    ok(api, job, command="insert", path="crlf.txt", insert_line=1, insert_text="between")
    assert api.read(job["id"], "crlf.txt")["content"] == "a\r\nbetween\r\nb\r\n"


@pytest.mark.parametrize(
    "path",
    ["/etc/passwd", "/repo/src/app.py", "../outside.txt", "link_out", ".git/config", "/workspace/.git/HEAD"],
)
def test_paths_outside_the_workspace_or_into_git_are_refused(
    api: Api, job: dict[str, Any], path: str
) -> None:
    refused(api, job, command="view", path=path)
    refused(api, job, command="create", path=path, file_text="pwned\n")


def test_missing_file_and_binary_file_are_tool_errors(api: Api, job: dict[str, Any]) -> None:
    assert "no such file" in refused(api, job, command="view", path="/workspace/nope.py")
    refused(api, job, command="str_replace", path="nope.py", old_str="a", new_str="b")
    refused(api, job, command="insert", path="nope.py", insert_line=0, insert_text="a")
    assert "binary" in refused(api, job, command="view", path="bin/blob.bin")


@pytest.mark.parametrize(
    ("body", "needs"),
    [
        ({"command": "create", "path": "x.py"}, "`file_text`"),
        ({"command": "str_replace", "path": "x.py", "new_str": "y"}, "`old_str`"),
        ({"command": "insert", "path": "x.py", "insert_text": "y"}, "`insert_line`"),
        ({"command": "insert", "path": "x.py"}, "`insert_line` and `insert_text`"),
    ],
)
def test_a_field_the_command_needs_is_a_tool_error_the_model_reads(
    api: Api, job: dict[str, Any], body: dict[str, Any], needs: str
) -> None:
    """As Anthropic's own implementation answers it: a tool_result with is_error, not an HTTP error
    (every body the schema admits is a 200), and nothing is written."""
    assert refused(api, job, **body) == f"Error: the `{body['command']}` command needs {needs}."
    assert api.post(f"/v1/jobs/{job['id']}/tools/read_file", {"path": "x.py"}).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"path": "src/app.py"},  # no command
        {"command": "undo_edit", "path": "src/app.py"},  # not in text_editor_20250728
        {"command": "view", "path": "src/app.py", "view_range": [1, 2, 3]},
        {"command": "view", "path": "src/app.py", "bogus": 1},
    ],
)
def test_malformed_input_is_a_400(api: Api, job: dict[str, Any], body: dict[str, Any]) -> None:
    Api.error(api.post(f"/v1/jobs/{job['id']}/tools/{EDIT}", body), 400, "invalid_request")


def test_caller_errors_are_http_errors(api: Api, auditor_api: Api, job: dict[str, Any]) -> None:
    body = {"command": "view", "path": "src/app.py"}
    Api.error(api.post(f"/v1/jobs/job_doesnotexist/tools/{EDIT}", body), 404, "job_not_found")
    Api.error(auditor_api.post(f"/v1/jobs/{job['id']}/tools/{EDIT}", body), 403, "forbidden")


def test_every_step_is_audited_as_its_tool(api: Api, auditor_api: Api, job: dict[str, Any]) -> None:
    api.write(job["id"], "e/audit.py", "x = 1\n")
    ok(api, job, command="insert", path="/workspace/e/audit.py", insert_line=1, insert_text="y = 2")
    r = auditor_api.get("/v1/audit", params={"job_id": job["id"], "path": "e/audit.py"})
    assert r.status_code == 200, r.text
    records = [x for x in r.json()["records"] if x["details"].get("via") == EDIT]
    assert [x["action"] for x in records] == ["tool.read_file", "tool.replace_in_file"]
    read, replace = records
    assert read["path"] == replace["path"] == "e/audit.py"
    assert replace["before_sha256"] == read["content_sha256"]  # the insert wrote over what it read
    assert replace["content_sha256"] and replace["content_sha256"] != replace["before_sha256"]
    assert replace["argv"][:3] == ["dockyard-tool", "replace_in_file", "e/audit.py"]
