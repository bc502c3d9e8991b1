"""read_file, write_file, replace_in_file: argv builders and answer parsers."""

from __future__ import annotations

from service.errors import BinaryFile, InvalidRequest, PayloadTooLarge
from service.models import (
    ReadFileRequest,
    ReadFileResult,
    ReplaceInFileRequest,
    ReplaceInFileResult,
    WriteFileRequest,
    WriteFileResult,
)
from service.sandbox.backend import ExecResult
from service.tools.protocol import TOOL, ToolCall, interrupted, split_header


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidRequest(f"{what} is not valid Unicode text (lone surrogate at {e.start})") from e


# --- read_file -------------------------------------------------------------------------------------


def read_call(req: ReadFileRequest, read_cap: int) -> ToolCall:
    if req.end_line is not None and req.end_line < req.start_line:
        raise InvalidRequest(
            f"end_line {req.end_line} is before start_line {req.start_line}",
            {"start_line": req.start_line, "end_line": req.end_line},
        )
    end = "" if req.end_line is None else str(req.end_line)
    argv = [
        TOOL,
        "read_file",
        req.path,
        str(req.start_line),
        end,
        "1" if req.numbered else "0",
        str(read_cap),
    ]
    return ToolCall("tool.read_file", argv, path=req.path)


def parse_read(req: ReadFileRequest, result: ExecResult) -> ReadFileResult:
    if flags := interrupted(result):
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
    header, payload = split_header(result)
    truncated = bool(header["truncated"])
    try:
        content = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        # A line longer than the cap is cut at a byte count: drop a split character at the very end.
        if truncated and e.start >= len(payload) - 3:
            content = payload[: e.start].decode("utf-8")
        else:
            raise BinaryFile(
                f"{req.path} is not UTF-8 text (invalid byte at offset {e.start})", {"path": req.path}
            ) from e
    return ReadFileResult(
        path=req.path,
        content=content,
        start_line=int(header["start_line"]),
        end_line=int(header["end_line"]),
        total_lines=int(header["total_lines"]),
        size_bytes=int(header["size_bytes"]),
        truncated=truncated,
    )


# --- write_file ------------------------------------------------------------------------------------


def write_call(req: WriteFileRequest, write_cap: int) -> ToolCall:
    data = _utf8(req.content, "content")
    if len(data) > write_cap:
        raise PayloadTooLarge(
            f"content is {len(data)} bytes, over the write cap of {write_cap} bytes",
            {"bytes": len(data), "cap_bytes": write_cap},
        )
    return ToolCall("tool.write_file", [TOOL, "write_file", req.path], stdin=data, path=req.path)


def parse_write(req: WriteFileRequest, result: ExecResult) -> WriteFileResult:
    if flags := interrupted(result):  # the helper writes atomically: nothing was written
        return WriteFileResult(path=req.path, bytes_written=0, created=False, **flags)
    header, _ = split_header(result)
    return WriteFileResult(
        path=req.path, bytes_written=int(header["bytes_written"]), created=bool(header["created"])
    )


# --- replace_in_file -------------------------------------------------------------------------------


def replace_call(req: ReplaceInFileRequest, write_cap: int) -> ToolCall:
    old, new = _utf8(req.old, "old"), _utf8(req.new, "new")
    if len(old) + len(new) > write_cap:
        raise PayloadTooLarge(
            f"old + new are {len(old) + len(new)} bytes, over the write cap of {write_cap} bytes",
            {"bytes": len(old) + len(new), "cap_bytes": write_cap},
        )
    stdin = f"{len(old)}\n".encode() + old + new
    argv = [TOOL, "replace_in_file", req.path, str(req.expected_count)]
    return ToolCall("tool.replace_in_file", argv, stdin=stdin, path=req.path)


def parse_replace(req: ReplaceInFileRequest, result: ExecResult) -> ReplaceInFileResult:
    if flags := interrupted(result):  # the helper writes atomically: nothing was replaced
        return ReplaceInFileResult(path=req.path, replacements=0, snippet="", **flags)
    header, payload = split_header(result)
    return ReplaceInFileResult(
        path=req.path, replacements=int(header["replacements"]), snippet=payload.decode("utf-8", "replace")
    )
