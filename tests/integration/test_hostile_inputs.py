"""Hostile inputs are clear 4xx answers (or honest results), never a 500: a body nested 100,000
deep, a 5,000-digit integer, a 300-byte file name, `.git` in another case, an over-size regex, a
tool call racing the job's deletion, lax booleans and integers. Each through the real service."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.docker


def _raw(api, path: str, data: str):
    return api.request("POST", path, data=data, headers={"Content-Type": "application/json"})


def _tool_path(job, name: str) -> str:
    return f"/v1/jobs/{job['id']}/tools/{name}"


# --- the JSON body ---------------------------------------------------------------------------------


def test_body_nested_100k_deep_is_400_and_the_service_lives_on(api, job):
    deep = '{"path": ' + "[" * 100_000 + "]" * 100_000 + "}"
    err = api.error(_raw(api, _tool_path(job, "read_file"), deep), 400, "invalid_request")
    assert "nested too deeply" in err["message"]
    assert api.get("/healthz").status_code == 200
    assert api.read(job["id"], "README.md")["content"].startswith("# fixture")


def test_5000_digit_integer_is_400(api, job):
    body = '{"path": "README.md", "start_line": ' + "7" * 5000 + "}"
    err = api.error(_raw(api, _tool_path(job, "read_file"), body), 400, "invalid_request")
    assert "digits" in err["message"]


def test_integer_under_the_parser_limit_but_over_any_field_is_400(api, job):
    body = '{"path": "README.md", "start_line": ' + "7" * 4000 + "}"
    err = api.error(_raw(api, _tool_path(job, "read_file"), body), 400, "invalid_request")
    assert err["details"]["errors"][0]["loc"] == ["start_line"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_400(api, make_job, constant):
    body = json.dumps(make_job.body()).replace("}", ', "limits": {"cpus": ' + constant + "}}")
    err = api.error(_raw(api, "/v1/jobs", body), 400, "invalid_request")
    assert "not valid JSON" in err["message"]


# --- strict booleans and integers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{"case_sensitive": 0}, {"case_sensitive": "true"}, {"max_results": "5"}, {"fixed_string": 1}],
)
def test_lax_booleans_and_integers_are_400(api, job, extra):
    r = api.tool(job["id"], "search", pattern="hello", **extra)
    err = api.error(r, 400, "invalid_request")
    assert err["details"]["errors"][0]["loc"] == list(extra)


def test_a_number_field_takes_a_json_integer(api, make_job):
    got = make_job(limits={"cpus": 1})
    assert got["limits"]["cpus"] == 1.0


@pytest.mark.parametrize(
    "body", [{}, {"repo": "a/b", "clone_url": "file:///x"}, {"repo": None, "clone_url": None}]
)
def test_job_needs_exactly_one_source(api, body):
    err = api.error(api.post("/v1/jobs", body), 400, "invalid_request")
    assert "exactly one of repo" in err["message"]


# --- names -------------------------------------------------------------------------------------


def test_300_byte_file_name_is_400(api, job):
    err = api.error(
        api.tool(job["id"], "write_file", path="d/" + "n" * 300, content="x"), 400, "invalid_request"
    )
    assert err["details"]["reason"] == "name_too_long"
    assert "255" in err["message"]
    # multi-byte: 100 characters of 3 bytes are 300 bytes
    err = api.error(
        api.tool(job["id"], "write_file", path="\u20ac" * 100, content="x"), 400, "invalid_request"
    )
    assert err["details"]["reason"] == "name_too_long"


def test_path_over_path_max_is_400(api, job):
    # 2,175 characters, 4,335 bytes: each component is legal, the whole is over PATH_MAX (4,096)
    path = "/".join(["\u00e9" * 127] * 17)
    err = api.error(api.tool(job["id"], "write_file", path=path, content="x"), 400, "invalid_request")
    assert err["details"]["reason"] == "name_too_long"
    assert api.tool_ok(job["id"], "list_directory", path=".")["entries"]


GIT_VARIANTS = [
    ".GIT/config",
    ".Git/hooks/pre-commit",
    "sub/.gIt/config",
    ".git./config",
    ".git /x",
    "GIT~1/x",
    ".g\u200cit/x",
]


@pytest.mark.parametrize("path", GIT_VARIANTS)
def test_git_in_any_case_is_outside_the_workspace(api, job, path):
    err = api.error(
        api.tool(job["id"], "write_file", path=path, content="[core]\n"), 400, "path_outside_workspace"
    )
    assert err["message"]
    api.error(api.tool(job["id"], "read_file", path=path), 400, "path_outside_workspace")


def test_lint_paths_refuse_git_in_any_case(api, job):
    api.error(
        api.post(f"/v1/jobs/{job['id']}/lint", {"paths": [".GIT/config"]}), 400, "path_outside_workspace"
    )


def test_diff_still_works_after_git_variant_attempts(api, job):
    for path in GIT_VARIANTS:
        api.tool(job["id"], "write_file", path=path, content="x")
    api.write(job["id"], "after-attempts.txt", "fine\n")
    r = api.get(f"/v1/jobs/{job['id']}/diff")
    assert r.status_code == 200, r.text[:500]
    assert "after-attempts.txt" in [f["path"] for f in r.json()["files"]]


def test_github_named_paths_still_work(api, job):
    assert api.write(job["id"], ".github/workflows/ci.yml", "on: push\n")["created"] is True
    assert api.write(job["id"], ".gitignore.d/x", "y\n")["created"] is True


# --- search ---------------------------------------------------------------------------------------


def test_over_size_regex_is_invalid_pattern_with_rgs_message(api, job):
    err = api.error(api.tool(job["id"], "search", pattern=r"\w{5000}"), 400, "invalid_pattern")
    assert "size limit" in err["message"]


def test_unreadable_file_mid_search_is_still_a_result(api, job, dexec):
    dexec.ok(job, "echo needle > /workspace/locked.txt && chmod 000 /workspace/locked.txt")
    try:
        got = api.tool_ok(job["id"], "search", pattern="needle 3")
        assert {m["path"] for m in got["matches"]} >= {"needles/n1.txt"}
    finally:
        dexec.ok(job, "rm -f /workspace/locked.txt")


# --- racing a job's end ---------------------------------------------------------------------------


def test_tool_calls_racing_the_delete_are_409_or_404_never_500(api, make_job):
    seen: list[int] = []
    lock = threading.Lock()
    for _ in range(3):
        job = make_job()
        start = threading.Barrier(9)

        def call(i: int, job_id: str = job["id"], start: threading.Barrier = start) -> None:
            start.wait()
            for _ in range(6):
                body = {"path": f"race-{i}.txt", "content": "x" * 1000} if i % 2 else {"path": "big.txt"}
                r = api.tool(job_id, "write_file" if i % 2 else "read_file", **body)
                with lock:
                    seen.append(r.status_code)
                if r.status_code in (404, 409):
                    assert r.json()["error"]["code"] in ("job_not_ready", "job_not_found"), r.text
                    return

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(call, i) for i in range(8)]
            start.wait()
            assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
            for f in futures:
                f.result()
        assert api.job(job["id"])["status"] == "destroyed"
    assert all(s in (200, 404, 409) for s in seen), sorted(set(seen))
    assert 409 in seen  # the race really happened


def test_sse_last_event_id_with_5000_digits_is_400(api, job):
    r = api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "9" * 5000}, timeout=30)
    api.error(r, 400, "invalid_request")


def test_sse_last_event_id_past_the_store_is_400(api, job):
    r = api.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "9" * 30}, timeout=30)
    api.error(r, 400, "invalid_request")


def test_audit_cursor_past_the_store_is_400(auditor_api):
    auditor_api.error(auditor_api.get("/v1/audit", params={"after": "9" * 30}), 400, "invalid_request")


@pytest.mark.parametrize("path", ["README.md/a/b", "src/app.py/x/y/z", "link_in/deeper/x"])
def test_writing_below_a_file_is_not_a_directory(api, job, path):
    api.error(api.tool(job["id"], "write_file", path=path, content="x"), 400, "not_a_directory")
    assert api.read(job["id"], "README.md")["content"].startswith("# fixture")
