"""The in-box helper's answer protocol, shared by every tool.

Success: exit 0, stdout = one JSON header line, then the raw payload.
Refusal: exit 3, stderr = one JSON object `{code, message, details}`, nothing changed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.errors import (
    BinaryFile,
    DockyardError,
    EditMismatch,
    FileNotFound,
    InvalidRequest,
    PathOutsideWorkspace,
    PayloadTooLarge,
    SandboxFailed,
)
from service.sandbox.backend import ExecResult

TOOL = "dockyard-tool"
REFUSED_EXIT = 3

_REFUSALS: dict[str, type[DockyardError]] = {
    "path_outside_workspace": PathOutsideWorkspace,
    "binary_file": BinaryFile,
    "file_not_found": FileNotFound,
    "edit_mismatch": EditMismatch,
    "invalid_request": InvalidRequest,
}


@dataclass(frozen=True)
class ToolCall:
    """One exec: the argv (audited as is, so never file contents) and the bytes fed on stdin."""

    action: str
    argv: list[str]
    stdin: bytes | None = None
    path: str | None = None


def refusal(result: ExecResult) -> DockyardError | None:
    """The typed error for a helper's refusal, or None when the call was not refused."""
    if result.exit_code != REFUSED_EXIT:
        return None
    try:
        # the last line, split at "\n" only: str.splitlines() also splits inside a path holding
        # U+0085, U+2028 or the like
        body = json.loads(result.stderr.decode("utf-8", "replace").strip().split("\n")[-1])
        code, message, details = str(body["code"]), str(body["message"]), dict(body.get("details") or {})
    except (ValueError, KeyError, IndexError, TypeError):
        return SandboxFailed(
            "the sandbox helper gave an unreadable refusal", {"stderr": _tail(result.stderr)}
        )
    if code == "disk_full":
        return PayloadTooLarge(message + " (the job's disk cap)", {**details, "reason": "disk_full"})
    if code in ("not_a_file", "not_a_directory"):
        return InvalidRequest(message, details, code=code)
    cls = _REFUSALS.get(code)
    if cls is None:
        return SandboxFailed(message, {**details, "helper_code": code})
    return cls(message, details)


def split_header(result: ExecResult) -> tuple[dict[str, Any], bytes]:
    """Raise the refusal, or a sandbox error for an unexpected exit; else (header, payload)."""
    err = refusal(result)
    if err is not None:
        raise err
    if result.exit_code != 0:
        raise SandboxFailed(
            f"the sandbox helper failed (exit {result.exit_code})",
            {"exit_code": result.exit_code, "stderr": _tail(result.stderr)},
        )
    head, sep, payload = result.stdout.partition(b"\n")
    try:
        header = json.loads(head)
    except ValueError:
        header = None
    if not sep or not isinstance(header, dict):
        raise SandboxFailed("the sandbox helper gave an unreadable answer", {"stderr": _tail(result.stderr)})
    return header, payload


def interrupted(result: ExecResult) -> dict[str, bool] | None:
    """The flags of a call killed for time or memory (a result, not an error), else None."""
    if result.timed_out or result.oom_killed:
        return {"timed_out": result.timed_out, "oom_killed": result.oom_killed}
    return None


def _tail(data: bytes, n: int = 2000) -> str:
    return data[-n:].decode("utf-8", "replace")
