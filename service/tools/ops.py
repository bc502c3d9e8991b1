"""The helper's operations: each op's arguments and result, as the service sends and reads them.

This is the one schema of the channel's payloads. The service builds every request from these
models and validates every answer against them; the helper (Go, `sandbox-images/base/helper/`)
reports its own structs through its `schema` op, and a test checks the two agree field by field.
Refusals come back as `{code, message, details}` and become the typed errors of `service.errors`
in `refusal()` below — the one place a helper code meets an HTTP status.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.errors import (
    BinaryFile,
    DockyardError,
    EditMismatch,
    FileExists,
    FileNotFound,
    InvalidPattern,
    InvalidRequest,
    IsADirectory,
    NotADirectory,
    NotAFile,
    PathOutsideWorkspace,
    PayloadTooLarge,
    SandboxFailed,
)

GitMode = Literal["100644", "100755", "120000"]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # a newer helper may say more


# --- files ------------------------------------------------------------------------------------------


class ReadFileArgs(_Op):
    path: str
    start_line: int
    end_line: int | None
    numbered: bool
    cap: int


class ReadFileOut(_Out):
    total_lines: int
    size_bytes: int
    start_line: int
    end_line: int
    truncated: bool
    content_sha256: str


class WriteFileArgs(_Op):
    path: str
    executable: bool | None


class WriteFileOut(_Out):
    bytes_written: int
    created: bool
    mode: GitMode
    ignored: bool
    content_sha256: str
    before_sha256: str | None


class ReplaceInFileArgs(_Op):
    path: str
    expected_count: int
    old_len: int


class ReplaceInFileOut(_Out):
    replacements: int
    content_sha256: str
    before_sha256: str


class DeleteFileArgs(_Op):
    path: str


class DeleteFileOut(_Out):
    deleted: bool
    before_sha256: str | None


class MoveFileArgs(_Op):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    overwrite: bool


class MoveFileOut(_Out):
    ignored: bool
    mode: GitMode
    before_sha256: str | None


class ListDirectoryArgs(_Op):
    path: str
    depth: int
    max_entries: int


class Entry(_Out):
    path: str
    type: Literal["file", "dir", "symlink", "other"]
    size: int


class ListDirectoryOut(_Out):
    entries: list[Entry]
    truncated: bool


class SearchArgs(_Op):
    path: str
    pattern: str
    glob: str | None
    fixed_string: bool
    case_sensitive: bool
    max_results: int
    max_text: int


class Match(_Out):
    path: str
    line: int
    column: int
    text: str


class SearchOut(_Out):
    matches: list[Match]
    truncated: bool
    files_searched: int


# --- git --------------------------------------------------------------------------------------------


class DiffArgs(_Op):
    base: str
    patch_cap: int


class DiffOut(_Out):
    sections: list[int]
    patch_truncated: bool


class ReadBlobsArgs(_Op):
    shas: list[str]
    cap: int


class Blob(_Out):
    sha: str
    size: int


class ReadBlobsOut(_Out):
    blobs: list[Blob]


# --- the box's log ----------------------------------------------------------------------------------


class NoteArgs(_Op):
    line: str


class NoteOut(_Out):
    pass


OPS: dict[str, tuple[type[_Op], type[_Out]]] = {
    "read_file": (ReadFileArgs, ReadFileOut),
    "write_file": (WriteFileArgs, WriteFileOut),
    "replace_in_file": (ReplaceInFileArgs, ReplaceInFileOut),
    "delete_file": (DeleteFileArgs, DeleteFileOut),
    "move_file": (MoveFileArgs, MoveFileOut),
    "list_directory": (ListDirectoryArgs, ListDirectoryOut),
    "search": (SearchArgs, SearchOut),
    "diff": (DiffArgs, DiffOut),
    "read_blobs": (ReadBlobsArgs, ReadBlobsOut),
    "note": (NoteArgs, NoteOut),  # a line in the box's log for a plain exec (not a tool)
}
CHANNEL_OPS = ("ping", "cancel", "schema")  # the channel's own, not tools


def args(model: _Op) -> dict[str, Any]:
    """An op's arguments as the helper reads them (by field alias: `from`, not `from_`)."""
    return model.model_dump(by_alias=True)


# --- refusals ---------------------------------------------------------------------------------------

_REFUSALS: dict[str, type[DockyardError]] = {
    "path_outside_workspace": PathOutsideWorkspace,
    "binary_file": BinaryFile,
    "file_not_found": FileNotFound,
    "edit_mismatch": EditMismatch,
    "invalid_request": InvalidRequest,
    "invalid_pattern": InvalidPattern,
    "is_a_directory": IsADirectory,
    "file_exists": FileExists,
    "payload_too_large": PayloadTooLarge,
    "not_a_file": NotAFile,
    "not_a_directory": NotADirectory,
}


def refusal(error: dict[str, Any]) -> DockyardError:
    """The typed error for the helper's `{code, message, details}`."""
    code = str(error.get("code", ""))
    message = str(error.get("message", "the sandbox helper refused"))
    details = error.get("details")
    details = dict(details) if isinstance(details, dict) else {}
    if code == "disk_full":
        return PayloadTooLarge(message + " (the job's disk cap)", {**details, "reason": "disk_full"})
    cls = _REFUSALS.get(code)
    if cls is None:
        return SandboxFailed(message, {**details, "helper_code": code})
    return cls(message, details)
