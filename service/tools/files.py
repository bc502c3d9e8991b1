"""read_file, write_file, replace_in_file, delete_file, move_file: the helper call each makes and
the answer each gives."""

from __future__ import annotations

from service.channel.helper import Reply
from service.errors import BinaryFile, InvalidRequest, PayloadTooLarge
from service.models import (
    DeleteFileRequest,
    DeleteFileResult,
    MoveFileRequest,
    MoveFileResult,
    ReadFileRequest,
    ReadFileResult,
    ReplaceInFileRequest,
    ReplaceInFileResult,
    WriteFileRequest,
    WriteFileResult,
)
from service.tools import ops
from service.tools.call import Caps, Flags, HelperCall


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidRequest(f"{what} is not valid Unicode text (lone surrogate at {e.start})") from e


# --- read_file -------------------------------------------------------------------------------------


def read_call(req: ReadFileRequest, caps: Caps) -> HelperCall:
    if req.end_line is not None and req.end_line < req.start_line:
        raise InvalidRequest(
            f"end_line {req.end_line} is before start_line {req.start_line}",
            {"start_line": req.start_line, "end_line": req.end_line},
        )
    a = ops.ReadFileArgs(
        path=req.path, start_line=req.start_line, end_line=req.end_line, numbered=req.numbered, cap=caps.read
    )
    return HelperCall("read_file", ops.args(a), path=req.path)


def read_answer(req: ReadFileRequest, reply: Reply) -> ReadFileResult:
    out = ops.ReadFileOut.model_validate(reply.result)
    try:
        content = reply.body.decode("utf-8")
    except UnicodeDecodeError as e:
        # A line longer than the cap is cut at a byte count: drop a split character at the very end.
        if out.truncated and e.start >= len(reply.body) - 3:
            content = reply.body[: e.start].decode("utf-8")
        else:
            raise BinaryFile(
                f"{req.path} is not UTF-8 text (invalid byte at offset {e.start})", {"path": req.path}
            ) from e
    return ReadFileResult(
        path=req.path,
        content=content,
        start_line=out.start_line,
        end_line=out.end_line,
        total_lines=out.total_lines,
        size_bytes=out.size_bytes,
        truncated=out.truncated,
    )


def read_interrupted(req: ReadFileRequest, flags: Flags) -> ReadFileResult:
    return ReadFileResult(
        path=req.path,
        content="",
        start_line=req.start_line,
        end_line=req.start_line - 1,
        total_lines=0,
        size_bytes=0,
        truncated=True,
        **flags,
    )


# --- write_file ------------------------------------------------------------------------------------


def write_call(req: WriteFileRequest, caps: Caps) -> HelperCall:
    data = _utf8(req.content, "content")
    if len(data) > caps.write:
        raise PayloadTooLarge(
            f"content is {len(data)} bytes, over the write cap of {caps.write} bytes",
            {"bytes": len(data), "cap_bytes": caps.write},
        )
    a = ops.WriteFileArgs(path=req.path, executable=req.executable)
    return HelperCall("write_file", ops.args(a), body=data, path=req.path)


def write_answer(req: WriteFileRequest, reply: Reply) -> WriteFileResult:
    out = ops.WriteFileOut.model_validate(reply.result)
    return WriteFileResult(
        path=req.path,
        bytes_written=out.bytes_written,
        created=out.created,
        mode=out.mode,
        ignored=out.ignored,
    )


def write_interrupted(req: WriteFileRequest, flags: Flags) -> WriteFileResult:
    # the helper checks its deadline before the final rename: nothing was written
    return WriteFileResult(path=req.path, bytes_written=0, created=False, **flags)


# --- replace_in_file -------------------------------------------------------------------------------


def replace_call(req: ReplaceInFileRequest, caps: Caps) -> HelperCall:
    old, new = _utf8(req.old, "old"), _utf8(req.new, "new")
    if len(old) + len(new) > caps.write:
        raise PayloadTooLarge(
            f"old + new are {len(old) + len(new)} bytes, over the write cap of {caps.write} bytes",
            {"bytes": len(old) + len(new), "cap_bytes": caps.write},
        )
    a = ops.ReplaceInFileArgs(path=req.path, expected_count=req.expected_count, old_len=len(old))
    return HelperCall("replace_in_file", ops.args(a), body=old + new, path=req.path)


def replace_answer(req: ReplaceInFileRequest, reply: Reply) -> ReplaceInFileResult:
    out = ops.ReplaceInFileOut.model_validate(reply.result)
    return ReplaceInFileResult(
        path=req.path, replacements=out.replacements, snippet=reply.body.decode("utf-8", "replace")
    )


def replace_interrupted(req: ReplaceInFileRequest, flags: Flags) -> ReplaceInFileResult:
    return ReplaceInFileResult(path=req.path, replacements=0, snippet="", **flags)


# --- delete_file -----------------------------------------------------------------------------------


def delete_call(req: DeleteFileRequest, caps: Caps) -> HelperCall:
    return HelperCall("delete_file", ops.args(ops.DeleteFileArgs(path=req.path)), path=req.path)


def delete_answer(req: DeleteFileRequest, reply: Reply) -> DeleteFileResult:
    out = ops.DeleteFileOut.model_validate(reply.result)
    return DeleteFileResult(path=req.path, deleted=out.deleted)


def delete_interrupted(req: DeleteFileRequest, flags: Flags) -> DeleteFileResult:
    return DeleteFileResult(path=req.path, deleted=False, **flags)


# --- move_file -------------------------------------------------------------------------------------


def move_call(req: MoveFileRequest, caps: Caps) -> HelperCall:
    if req.from_.strip("/") == req.to.strip("/"):
        raise InvalidRequest("from and to are the same path", {"from": req.from_, "to": req.to})
    a = ops.MoveFileArgs(from_=req.from_, to=req.to, overwrite=req.overwrite)
    return HelperCall("move_file", ops.args(a), path=req.from_, extra_argv=(req.to,), details={"to": req.to})


def move_answer(req: MoveFileRequest, reply: Reply) -> MoveFileResult:
    out = ops.MoveFileOut.model_validate(reply.result)
    return MoveFileResult(from_=req.from_, to=req.to, mode=out.mode, ignored=out.ignored)


def move_interrupted(req: MoveFileRequest, flags: Flags) -> MoveFileResult:
    return MoveFileResult(from_=req.from_, to=req.to, **flags)
