"""search: regex and fixed strings, positions, globs, case, limits, `.git` excluded."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker


def _search(api, job, **body):
    return api.tool_ok(job["id"], "search", **body)


def test_regex_match_gives_path_line_column_text(api, job):
    got = _search(api, job, pattern=r"def \w+\(x\)")
    assert got["matches"] == [{"path": "src/app.py", "line": 4, "column": 1, "text": "def foo(x):"}]
    assert got["truncated"] is False
    assert got["files_searched"] >= 1


def test_column_is_one_based_within_the_line(api, job):
    got = _search(api, job, pattern="return x", fixed_string=True)
    assert got["matches"] == [{"path": "src/app.py", "line": 5, "column": 5, "text": "    return x + 1"}]


def test_paths_have_no_dot_slash_prefix(api, job):
    got = _search(api, job, pattern="needle")
    assert got["matches"]
    for m in got["matches"]:
        assert not m["path"].startswith(("./", "/")), m
        assert m["path"].startswith("needles/n"), m


def test_glob_filters_files(api, job):
    got = _search(api, job, pattern="hello", case_sensitive=False, glob="*.py")
    assert {m["path"] for m in got["matches"]} == {"src/util/helpers.py"}
    got = _search(api, job, pattern="hello", case_sensitive=False, glob="*.txt")
    assert {m["path"] for m in got["matches"]} == {"case.txt"}


def test_path_limits_the_search(api, job):
    got = _search(api, job, pattern="def ", path="src/util")
    assert [m["path"] for m in got["matches"]] == ["src/util/helpers.py"]
    got = _search(api, job, pattern="needle 3", path="needles")
    assert sorted(m["path"] for m in got["matches"]) == ["needles/n1.txt", "needles/n2.txt", "needles/n3.txt"]
    assert got["files_searched"] == 3


def test_fixed_string_with_regex_metacharacters(api, job):
    got = _search(api, job, pattern="a.b(", fixed_string=True)
    assert [(m["path"], m["line"]) for m in got["matches"]] == [("src/app.py", 9)]
    assert got["matches"][0]["column"] == 13


def test_regex_dot_matches_any_character(api, job):
    got = _search(api, job, pattern=r"a.b\(")
    assert sorted((m["path"], m["line"]) for m in got["matches"]) == [("src/app.py", 9), ("src/app.py", 10)]


def test_case_sensitive_by_default(api, job):
    got = _search(api, job, pattern="hello", glob="case.txt")
    assert [m["line"] for m in got["matches"]] == [3]


def test_case_insensitive(api, job):
    got = _search(api, job, pattern="hello", glob="case.txt", case_sensitive=False)
    assert [m["line"] for m in got["matches"]] == [1, 2, 3, 4]


def test_max_results_truncates_across_files(api, job):
    got = _search(api, job, pattern="needle", max_results=5)
    assert len(got["matches"]) == 5
    assert got["truncated"] is True
    everything = _search(api, job, pattern="needle", max_results=1000)
    assert len(everything["matches"]) == 30
    assert everything["truncated"] is False
    exact = _search(api, job, pattern="needle", max_results=30)
    assert len(exact["matches"]) == 30
    assert exact["truncated"] is False


def test_max_results_within_one_file(api, job):
    got = _search(api, job, pattern="needle", path="needles/n1.txt", max_results=3)
    assert [m["line"] for m in got["matches"]] == [1, 2, 3]
    assert got["truncated"] is True


def test_no_match_is_an_empty_result(api, job):
    got = _search(api, job, pattern="zz-not-anywhere-zz")
    assert got["matches"] == [] and got["truncated"] is False


def test_unicode_pattern_and_path(api, job):
    got = _search(api, job, pattern="世界")
    assert [m["path"] for m in got["matches"]] == ["ünï/cödé.py"]
    assert got["matches"][0]["line"] == 2


def test_invalid_regex_is_invalid_pattern(api, job):
    api.error(api.tool(job["id"], "search", pattern="("), 400, "invalid_pattern")
    api.error(api.tool(job["id"], "search", pattern="a.b("), 400, "invalid_pattern")


def test_pattern_starting_with_dash_is_a_pattern_not_an_option(api, make_job):
    job = make_job()
    api.write(job["id"], "dash.txt", "--files\n-hello\n")
    got = _search(api, job, pattern="--files")
    assert [(m["path"], m["line"]) for m in got["matches"]] == [("dash.txt", 1)]
    got = _search(api, job, pattern="-hello", fixed_string=True)
    assert [(m["path"], m["line"]) for m in got["matches"]] == [("dash.txt", 2)]


def test_git_contents_never_found(api, job, dexec):
    # the base commit's sha is certainly inside .git (HEAD, refs or packed-refs) ...
    code, out = dexec(job, ["grep", "-rl", job["base_sha"], "/workspace/.git"])
    assert code == 0 and out.strip(), "precondition: the sha should be findable inside .git"
    # ... but search never looks there
    got = _search(api, job, pattern=job["base_sha"], fixed_string=True)
    assert got["matches"] == []


@pytest.mark.parametrize("glob", ["*", "**", ".git/**", "**/*.sample", "{.git,src}/**"])
def test_glob_never_reaches_git_contents(api, job, dexec, glob):
    # the hook samples of every clone mention refs/heads; no work file does
    code, out = dexec(job, ["grep", "-rl", "refs/heads", "/workspace/.git"])
    assert code == 0 and out.strip(), "precondition: refs/heads should be findable inside .git"
    got = _search(api, job, pattern="refs/heads", fixed_string=True, glob=glob)
    leaked = sorted({m["path"] for m in got["matches"] if m["path"].split("/")[0] == ".git"})
    assert leaked == [], f"search with glob {glob!r} read inside .git: {leaked}"


def test_search_in_git_folder_is_refused(api, job):
    api.error(api.tool(job["id"], "search", pattern="main", path=".git"), 400, "path_outside_workspace")

