"""diff: the workspace against base_sha, computed by git inside the box.

The helper prints three sections: `--raw -z` (modes, status), `--numstat -z` (counts, binary),
and the unified patch. Paths are repo-relative; renames are off, so a move is a delete + an add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

from service.errors import PayloadTooLarge, SandboxFailed
from service.models import DiffFile, DiffResult, DiffStats
from service.sandbox.backend import ExecResult
from service.tools.protocol import TOOL, ToolCall, interrupted, split_header

Mode = Literal["100644", "100755", "120000", "160000"]
_STATUS = {"A": "added", "M": "modified", "T": "modified", "D": "deleted"}


def diff_call(base_sha: str) -> ToolCall:
    return ToolCall("diff", [TOOL, "diff", base_sha])


def _mode(mode: str) -> Mode:
    return cast(Mode, mode if mode in ("100644", "100755", "120000", "160000") else "100644")


@dataclass(frozen=True)
class Change:
    """One changed path as git sees it in the box (the index after `git add --all`)."""

    path: str
    path_is_utf8: bool
    status: Literal["added", "modified", "deleted"]
    old_mode: str
    new_mode: str
    new_sha: str
    binary: bool
    additions: int
    deletions: int

    @property
    def mode(self) -> str:
        return self.old_mode if self.status == "deleted" else self.new_mode


@dataclass(frozen=True)
class Changes:
    changes: list[Change]
    patch: bytes
    output_truncated: bool


def parse_changes(result: ExecResult) -> Changes:
    """The helper's three sections → changes (raw + numstat) and the patch bytes."""
    header, payload = split_header(result)
    try:
        raw_len, num_len, _ = (int(n) for n in header["sections"])
    except (KeyError, TypeError, ValueError) as e:
        raise SandboxFailed("the sandbox helper gave a malformed diff", {}) from e
    raw, numstat = payload[:raw_len], payload[raw_len : raw_len + num_len]
    counts: dict[bytes, tuple[int, int, bool]] = {}
    for item in numstat.split(b"\0"):
        if not item:
            continue
        added, deleted, path = item.split(b"\t", 2)
        binary = added == b"-"
        counts[path] = (0 if binary else int(added), 0 if binary else int(deleted), binary)
    changes: list[Change] = []
    parts = raw.split(b"\0")
    for i in range(0, len(parts) - 1, 2):
        meta, path_b = parts[i], parts[i + 1]
        if not meta.startswith(b":"):
            continue
        old_mode, new_mode, _old_sha, new_sha, status = meta[1:].decode().split(" ")
        try:
            name, utf8 = path_b.decode("utf-8"), True
        except UnicodeDecodeError:
            name, utf8 = path_b.decode("utf-8", "replace"), False
        n_add, n_del, binary = counts.get(path_b, (0, 0, False))
        kind = cast(Literal["added", "modified", "deleted"], _STATUS.get(status[:1], "modified"))
        changes.append(Change(name, utf8, kind, old_mode, new_mode, new_sha, binary, n_add, n_del))
    return Changes(changes, payload[raw_len + num_len :], result.output_truncated)


def parse_diff(base_sha: str, result: ExecResult, patch_cap: int) -> DiffResult:
    if flags := interrupted(result):
        return DiffResult(
            base_sha=base_sha,
            files=[],
            patch="",
            patch_truncated=True,
            stats=DiffStats(files=0, additions=0, deletions=0),
            **flags,
        )
    parsed = parse_changes(result)
    files = [
        DiffFile(
            path=c.path,
            status=c.status,
            mode=_mode(c.mode),
            old_mode=c.old_mode if c.status == "modified" and c.old_mode != c.new_mode else None,
            binary=c.binary,
            additions=c.additions,
            deletions=c.deletions,
        )
        for c in parsed.changes
    ]
    return DiffResult(
        base_sha=base_sha,
        files=files,
        patch=parsed.patch[:patch_cap].decode("utf-8", "replace"),
        patch_truncated=parsed.output_truncated or len(parsed.patch) > patch_cap,
        stats=DiffStats(
            files=len(files),
            additions=sum(c.additions for c in parsed.changes),
            deletions=sum(c.deletions for c in parsed.changes),
        ),
    )


def blobs_call(shas: list[str]) -> ToolCall:
    """Read blobs from the box's own object store (one exec, binary-safe): `git cat-file --batch`."""
    stdin = "".join(f"{sha}\n" for sha in shas).encode()
    return ToolCall("commit.read_blobs", ["git", "-C", "/workspace", "cat-file", "--batch"], stdin=stdin)


def parse_blobs(result: ExecResult) -> dict[str, bytes]:
    if result.output_truncated:  # the caller's binary files are over what one commit may carry
        raise PayloadTooLarge(
            "the changed binary files are over the output cap of one commit; commit fewer or "
            "smaller binary files",
            {"bytes_out": result.bytes_out},
        )
    if result.exit_code != 0 or result.timed_out:
        raise SandboxFailed(
            "could not read the changed files from the sandbox"
            + (" (over the output cap)" if result.output_truncated else ""),
            {"exit_code": result.exit_code},
        )
    blobs: dict[str, bytes] = {}
    data, pos = result.stdout, 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        sha, kind, size = data[pos:end].decode().split(" ")
        start = end + 1
        blobs[sha] = data[start : start + int(size)]
        pos = start + int(size) + 1  # the content is followed by a newline
        if kind != "blob":
            raise SandboxFailed(f"object {sha} is a {kind}, not a blob", {})
    return blobs
