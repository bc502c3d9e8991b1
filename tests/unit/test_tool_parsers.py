"""The tools' answer parsers, fed with the helper's exact output shapes."""

import json

import pytest

from service.errors import BinaryFile, EditMismatch, InvalidPattern, PathOutsideWorkspace, PayloadTooLarge
from service.models import ReadFileRequest, ReplaceInFileRequest, SearchRequest, WriteFileRequest
from service.sandbox.backend import ExecResult
from service.tools import diff, files, search


def result(stdout: bytes = b"", stderr: bytes = b"", code: int = 0, **flags: bool) -> ExecResult:
    return ExecResult(
        argv=[],
        exit_code=code,
        stdout=stdout,
        stderr=stderr,
        duration_ms=1,
        bytes_in=0,
        bytes_out=len(stdout),
        **flags,
    )


def refusal(code: str, **details: object) -> ExecResult:
    return result(
        stderr=json.dumps({"code": code, "message": f"{code}!", "details": details}).encode(), code=3
    )


def test_refusals_map_to_contract_errors() -> None:
    req = ReadFileRequest(path="../x")
    with pytest.raises(PathOutsideWorkspace):
        files.parse_read(req, refusal("path_outside_workspace", path="../x"))
    with pytest.raises(BinaryFile):
        files.parse_read(req, refusal("binary_file"))
    with pytest.raises(EditMismatch) as e:
        files.parse_replace(
            ReplaceInFileRequest(path="a", old="x", new="y"),
            refusal("edit_mismatch", occurrence_lines=[1, 4]),
        )
    assert e.value.details["occurrence_lines"] == [1, 4]
    with pytest.raises(PayloadTooLarge):
        files.parse_write(WriteFileRequest(path="a", content="x"), refusal("disk_full"))


def test_read_non_utf8_is_binary() -> None:
    header = json.dumps(
        {"total_lines": 1, "size_bytes": 2, "start_line": 1, "end_line": 1, "truncated": False}
    )
    with pytest.raises(BinaryFile, match="not UTF-8"):
        files.parse_read(ReadFileRequest(path="a"), result(header.encode() + b"\n\xff\xfe"))


def test_read_timeout_is_a_result() -> None:
    r = files.parse_read(ReadFileRequest(path="a"), result(code=137, timed_out=True))
    assert r.timed_out and r.content == ""


def test_write_cap_checked_before_exec() -> None:
    with pytest.raises(PayloadTooLarge):
        files.write_call(WriteFileRequest(path="a", content="é" * 600), write_cap=1024)
    call = files.write_call(WriteFileRequest(path="a", content="é" * 500), write_cap=1024)
    assert call.stdin == "é".encode() * 500
    assert b"\xc3" not in "".join(call.argv).encode()  # contents travel on stdin, never in argv


def test_replace_stdin_framing() -> None:
    call = files.replace_call(ReplaceInFileRequest(path="a", old="é\n", new="x"), write_cap=1024)
    assert call.stdin == b"3\n\xc3\xa9\nx"


def _rg(*events: dict) -> bytes:  # type: ignore[type-arg]
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


def test_search_parses_ripgrep_json_and_truncates() -> None:
    events = [{"type": "begin", "data": {"path": {"text": "./src/a.py"}}}]
    for n in (3, 7, 9):
        events.append(
            {
                "type": "match",
                "data": {
                    "path": {"text": "./src/a.py"},
                    "lines": {"text": "  é foo\n"},
                    "line_number": n,
                    "submatches": [{"match": {"text": "foo"}, "start": 5, "end": 8}],
                },
            }
        )
    events.append({"type": "summary", "data": {"stats": {"searches": 4}}})
    req = SearchRequest(pattern="foo", max_results=2)
    r = search.parse_search(req, result(_rg(*events)))
    assert [(m.path, m.line, m.column, m.text) for m in r.matches] == [
        ("src/a.py", 3, 5, "  é foo"),
        ("src/a.py", 7, 5, "  é foo"),
    ]
    assert r.truncated and r.files_searched == 4


def test_search_bad_regex() -> None:
    with pytest.raises(InvalidPattern):
        search.parse_search(SearchRequest(pattern="("), result(stderr=b"regex parse error:\n (\n", code=2))


def test_diff_sections() -> None:
    raw = (
        b":100644 100755 " + b"a" * 40 + b" " + b"b" * 40 + b" M\0run.sh\0"
        b":000000 100644 " + b"0" * 40 + b" " + b"c" * 40 + b" A\0img.png\0"
        b":100644 000000 " + b"d" * 40 + b" " + b"0" * 40 + b" D\0old.txt\0"
    )
    numstat = b"1\t0\trun.sh\0-\t-\timg.png\0" + b"0\t2\told.txt\0"
    patch = b"diff --git a/run.sh b/run.sh\n"
    header = json.dumps({"sections": [len(raw), len(numstat), len(patch)]}).encode()
    d = diff.parse_diff("f" * 40, result(header + b"\n" + raw + numstat + patch), patch_cap=1 << 20)
    assert [(f.path, f.status, f.mode, f.binary, f.old_mode) for f in d.files] == [
        ("run.sh", "modified", "100755", False, "100644"),
        ("img.png", "added", "100644", True, None),
        ("old.txt", "deleted", "100644", False, None),
    ]
    assert (d.stats.files, d.stats.additions, d.stats.deletions) == (3, 1, 2)
    assert d.patch == patch.decode()
