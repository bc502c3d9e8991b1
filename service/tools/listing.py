"""list_directory: argv builder and parser of the helper's NUL-separated entries."""

from __future__ import annotations

from typing import Literal, cast

from service.errors import SandboxFailed
from service.models import DirectoryEntry, ListDirectoryRequest, ListDirectoryResult
from service.sandbox.backend import ExecResult
from service.tools.protocol import TOOL, ToolCall, interrupted, split_header

EntryType = Literal["file", "dir", "symlink", "other"]


def list_call(req: ListDirectoryRequest, max_entries: int) -> ToolCall:
    argv = [TOOL, "list_directory", req.path, str(req.depth), str(max_entries)]
    return ToolCall("tool.list_directory", argv, path=req.path)


def parse_list(req: ListDirectoryRequest, result: ExecResult) -> ListDirectoryResult:
    if flags := interrupted(result):
        return ListDirectoryResult(path=req.path, entries=[], truncated=True, **flags)
    header, payload = split_header(result)
    fields = payload.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    if len(fields) % 3:
        raise SandboxFailed("the sandbox helper gave a malformed listing", {})
    entries = []
    for i in range(0, len(fields), 3):
        kind, size, path = fields[i : i + 3]
        entries.append(
            DirectoryEntry(
                path=path.decode("utf-8", "replace"),
                type=cast(EntryType, kind.decode()),
                size=int(size),
            )
        )
    return ListDirectoryResult(
        path=req.path, entries=entries, truncated=bool(header["truncated"]) or result.output_truncated
    )
