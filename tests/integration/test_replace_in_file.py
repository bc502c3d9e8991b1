"""replace_in_file: exact replacement, counts, line endings kept, mismatches explained."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.docker

NUMBERED = re.compile(r"^ *(\d+)\t")


def _numbered_lines(snippet: str) -> dict[int, str]:
    out = {}
    for line in snippet.splitlines():
        m = NUMBERED.match(line)
        if m:
            out[int(m.group(1))] = line[m.end():]
    return out


def test_single_replacement_with_numbered_snippet(api, job):
    api.write(job["id"], "r/single.py", "def alpha():\n    return 1\n\n\ndef beta():\n    return 2\n")
    got = api.tool_ok(job["id"], "replace_in_file", path="r/single.py", old="return 2", new="return 42")
    assert got["path"] == "r/single.py"
    assert got["replacements"] == 1
    lines = _numbered_lines(got["snippet"])
    assert lines, f"snippet has no numbered lines: {got['snippet']!r}"
    assert lines.get(6) == "    return 42"
    assert lines.get(5) == "def beta():"  # context around the change
    back = api.read(job["id"], "r/single.py")["content"]
    assert back == "def alpha():\n    return 1\n\n\ndef beta():\n    return 42\n"


def test_repo_crlf_file_keeps_crlf(api, job):
    got = api.tool_ok(job["id"], "replace_in_file", path="crlf.txt", old="b", new="B")
    assert got["replacements"] == 1
    assert api.read(job["id"], "crlf.txt")["content"] == "a\r\nB\r\n"


def test_multiline_edit_in_crlf_file_keeps_other_line_endings(api, job):
    api.write(job["id"], "r/crlf.txt", "one\r\ntwo\r\nthree\r\nfour\r\n")
    api.tool_ok(job["id"], "replace_in_file", path="r/crlf.txt", old="two\r\nthree", new="2\r\n3")
    assert api.read(job["id"], "r/crlf.txt")["content"] == "one\r\n2\r\n3\r\nfour\r\n"


def test_tabs_are_preserved(api, job):
    api.write(job["id"], "r/tabs.go", "func f() {\n\tif x {\n\t\treturn\t1\n\t}\n}")
    api.tool_ok(job["id"], "replace_in_file", path="r/tabs.go", old="\t\treturn\t1", new="\t\treturn\t2")
    assert api.read(job["id"], "r/tabs.go")["content"] == "func f() {\n\tif x {\n\t\treturn\t2\n\t}\n}"


def test_unicode_replacement(api, job):
    api.write(job["id"], "r/uni.txt", "Grüße, 世界\n")
    api.tool_ok(job["id"], "replace_in_file", path="r/uni.txt", old="世界", new="🌍")
    assert api.read(job["id"], "r/uni.txt")["content"] == "Grüße, 🌍\n"


def test_expected_count_two(api, job):
    api.write(job["id"], "r/two.txt", "x = 1\ny = 2\nx = 1\n")
    got = api.tool_ok(
        job["id"], "replace_in_file", path="r/two.txt", old="x = 1", new="x = 3", expected_count=2
    )
    assert got["replacements"] == 2
    assert api.read(job["id"], "r/two.txt")["content"] == "x = 3\ny = 2\nx = 3\n"


def test_no_match_is_409_with_closest_lines(api, job):
    content = "def alpha():\n    return 1\n\n\ndef beta():\n    return 2\n"
    api.write(job["id"], "r/miss.py", content)
    r = api.tool(job["id"], "replace_in_file", path="r/miss.py", old="def betta():\n", new="def gamma():\n")
    err = api.error(r, 409, "edit_mismatch")
    details = err["details"]
    assert details.get("found_count", 0) == 0
    closest = details.get("closest_lines")
    assert isinstance(closest, list) and closest, details
    assert 5 in closest, f"line 5 ('def beta():') should be among the closest lines: {details}"
    assert all(isinstance(n, int) and 1 <= n <= 6 for n in closest)
    assert api.read(job["id"], "r/miss.py")["content"] == content


def test_count_mismatch_lists_every_occurrence(api, job):
    content = "TODO one\nkeep\nTODO two\nkeep\nTODO three\n"
    api.write(job["id"], "r/count.txt", content)
    r = api.tool(job["id"], "replace_in_file", path="r/count.txt", old="TODO", new="DONE")
    err = api.error(r, 409, "edit_mismatch")
    assert err["details"].get("occurrence_lines") == [1, 3, 5], err
    assert err["details"].get("found_count") == 3
    assert api.read(job["id"], "r/count.txt")["content"] == content


def test_expected_more_than_found_is_refused(api, job):
    content = "only once\n"
    api.write(job["id"], "r/once.txt", content)
    r = api.tool(job["id"], "replace_in_file", path="r/once.txt", old="once", new="twice", expected_count=2)
    err = api.error(r, 409, "edit_mismatch")
    assert err["details"].get("occurrence_lines") == [1], err
    assert api.read(job["id"], "r/once.txt")["content"] == content


def test_executable_bit_survives_an_edit(api, job, dexec):
    api.tool_ok(job["id"], "replace_in_file", path="scripts/run.sh", old="running", new="edited")
    assert dexec.ok(job, ["stat", "-c", "%a", "/workspace/scripts/run.sh"]).strip() == "755"


def test_missing_file_is_404(api, job):
    r = api.tool(job["id"], "replace_in_file", path="r/none.txt", old="a", new="b")
    api.error(r, 404, "file_not_found")


def test_binary_file_is_refused(api, job):
    r = api.tool(job["id"], "replace_in_file", path="bin/blob.bin", old="tail", new="TAIL")
    api.error(r, 400, "binary_file")


def test_empty_old_is_invalid_request(api, job):
    r = api.tool(job["id"], "replace_in_file", path="crlf.txt", old="", new="x")
    api.error(r, 400, "invalid_request")


def test_lone_surrogate_in_edit_is_invalid_request(api, job):
    api.write(job["id"], "r/sur.txt", "plain\n")
    r = api.tool(job["id"], "replace_in_file", path="r/sur.txt", old="plain", new="\udcff")
    api.error(r, 400, "invalid_request")
    assert api.read(job["id"], "r/sur.txt")["content"] == "plain\n"


def test_new_text_containing_old_is_replaced_once(api, job):
    api.write(job["id"], "r/grow.txt", "ab\n")
    got = api.tool_ok(job["id"], "replace_in_file", path="r/grow.txt", old="ab", new="abab")
    assert got["replacements"] == 1
    assert api.read(job["id"], "r/grow.txt")["content"] == "abab\n"


def test_deleting_text_with_empty_new(api, job):
    api.write(job["id"], "r/del.txt", "keep\ndrop me\nkeep too\n")
    api.tool_ok(job["id"], "replace_in_file", path="r/del.txt", old="drop me\n", new="")
    assert api.read(job["id"], "r/del.txt")["content"] == "keep\nkeep too\n"
