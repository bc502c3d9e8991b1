"""The tools' calls and answers, fed with the helper's exact reply shapes."""

import pytest

from service.channel.helper import Reply
from service.errors import (
    BinaryFile,
    EditMismatch,
    FileExists,
    InvalidRequest,
    IsADirectory,
    PathOutsideWorkspace,
    PayloadTooLarge,
)
from service.models import MoveFileRequest, ReadFileRequest, ReplaceInFileRequest, WriteFileRequest
from service.tools import diff, files, ops
from service.tools.call import Caps

CAPS = Caps(read=1 << 18, write=1024, output=1 << 20)


def reply(result: dict[str, object], body: bytes = b"") -> Reply:
    return Reply(True, dict(result), None, body, 1, 0, len(body))


def test_refusals_map_to_contract_errors() -> None:
    def err(code: str, **details: object) -> Exception:
        return ops.refusal({"code": code, "message": f"{code}!", "details": details})

    assert isinstance(err("path_outside_workspace", path="../x"), PathOutsideWorkspace)
    assert isinstance(err("binary_file"), BinaryFile)
    mismatch = err("edit_mismatch", occurrence_lines=[1, 4])
    assert isinstance(mismatch, EditMismatch) and mismatch.details["occurrence_lines"] == [1, 4]
    full = err("disk_full")
    assert isinstance(full, PayloadTooLarge) and full.details["reason"] == "disk_full"
    assert isinstance(err("is_a_directory"), IsADirectory) and err("is_a_directory").status == 400
    assert isinstance(err("file_exists"), FileExists) and err("file_exists").status == 409
    not_dir = err("not_a_directory")
    assert isinstance(not_dir, InvalidRequest) and not_dir.code == "not_a_directory"
    assert err("something_new").status == 500


def test_read_non_utf8_is_binary() -> None:
    head = {"total_lines": 1, "size_bytes": 2, "start_line": 1, "end_line": 1, "truncated": False,
            "content_sha256": "0" * 64}
    with pytest.raises(BinaryFile, match="not UTF-8"):
        files.read_answer(ReadFileRequest(path="a"), reply(head, b"\xff\xfe"))
    cut = files.read_answer(ReadFileRequest(path="a"), reply({**head, "truncated": True}, b"ab\xc3"))
    assert cut.content == "ab"  # a character split by the cap is dropped, not an error


def test_read_timeout_is_a_result() -> None:
    r = files.read_interrupted(ReadFileRequest(path="a"), {"timed_out": True, "oom_killed": False})
    assert r.timed_out and r.content == "" and r.truncated


def test_write_cap_checked_before_the_call_and_content_goes_in_the_body() -> None:
    with pytest.raises(PayloadTooLarge):
        files.write_call(WriteFileRequest(path="a", content="é" * 600), CAPS)
    call = files.write_call(WriteFileRequest(path="a", content="é" * 500, executable=True), CAPS)
    assert call.body == "é".encode() * 500 and call.args == {"path": "a", "executable": True}
    assert b"\xc3" not in "".join(call.argv).encode()  # contents never reach the audit argv


def test_replace_body_is_old_then_new() -> None:
    call = files.replace_call(ReplaceInFileRequest(path="a", old="é\n", new="x"), CAPS)
    assert call.body == b"\xc3\xa9\nx" and call.args["old_len"] == 3


def test_move_names_from_on_the_wire_and_refuses_a_move_onto_itself() -> None:
    call = files.move_call(MoveFileRequest.model_validate({"from": "a/b", "to": "c"}), CAPS)
    assert call.args == {"from": "a/b", "to": "c", "overwrite": False}
    assert call.argv == ["dockyard-tool", "move_file", "a/b", "c"]
    with pytest.raises(InvalidRequest):
        files.move_call(MoveFileRequest.model_validate({"from": "a", "to": "a/"}), CAPS)


def test_diff_sections() -> None:
    raw = (
        b":100644 100755 " + b"a" * 40 + b" " + b"b" * 40 + b" M\0run.sh\0"
        b":000000 100644 " + b"0" * 40 + b" " + b"c" * 40 + b" A\0img.png\0"
        b":100644 000000 " + b"d" * 40 + b" " + b"0" * 40 + b" D\0old.txt\0"
    )
    numstat = b"1\t0\trun.sh\0-\t-\timg.png\0" + b"0\t2\told.txt\0"
    patch = b"diff --git a/run.sh b/run.sh\n"
    sections = {"sections": [len(raw), len(numstat), len(patch)], "patch_truncated": False}
    r = reply(sections, raw + numstat + patch)
    q = diff.DiffQuery("f" * 40)
    d = diff.to_result(q.base_sha, diff.parse_changes(q, r), patch_cap=1 << 20)
    assert [(f.path, f.status, f.mode, f.binary, f.old_mode) for f in d.files] == [
        ("run.sh", "modified", "100755", False, "100644"),
        ("img.png", "added", "100644", True, None),
        ("old.txt", "deleted", "100644", False, None),
    ]
    assert (d.stats.files, d.stats.additions, d.stats.deletions) == (3, 1, 2)
    assert d.patch == patch.decode()


def test_blobs_are_cut_from_one_binary_body() -> None:
    a, b = "a" * 40, "b" * 40
    q = diff.BlobsQuery((a, b))
    r = reply({"blobs": [{"sha": a, "size": 3}, {"sha": b, "size": 0}]}, b"\x00\n\xff")
    assert diff.parse_blobs(q, r) == {a: b"\x00\n\xff", b: b""}
