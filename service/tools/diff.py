"""diff: the workspace against base_sha, computed by git inside the box.

The helper prints three sections: `--raw -z` (modes, status), `--numstat -z` (counts, binary),
and the unified patch. Paths are repo-relative; renames are off, so a move is a delete + an add.
"""

from __future__ import annotations

from typing import Literal, cast

from service.errors import SandboxFailed
from service.models import DiffFile, DiffResult, DiffStats
from service.sandbox.backend import ExecResult
from service.tools.protocol import TOOL, ToolCall, interrupted, split_header

Mode = Literal["100644", "100755", "120000", "160000"]
_STATUS = {"A": "added", "M": "modified", "T": "modified", "D": "deleted"}


def diff_call(base_sha: str) -> ToolCall:
    return ToolCall("diff", [TOOL, "diff", base_sha])


def _mode(mode: str) -> Mode:
    return cast(Mode, mode if mode in ("100644", "100755", "120000", "160000") else "100644")


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
    header, payload = split_header(result)
    try:
        raw_len, num_len, _ = (int(n) for n in header["sections"])
    except (KeyError, TypeError, ValueError) as e:
        raise SandboxFailed("the sandbox helper gave a malformed diff", {}) from e
    raw, numstat, patch = (
        payload[:raw_len],
        payload[raw_len : raw_len + num_len],
        payload[raw_len + num_len :],
    )
    patch_truncated = result.output_truncated or len(patch) > patch_cap
    patch = patch[:patch_cap]

    counts: dict[str, tuple[int, int, bool]] = {}
    fields = numstat.split(b"\0")
    for item in fields:
        if not item:
            continue
        added, deleted, path = item.split(b"\t", 2)
        binary = added == b"-"
        counts[path.decode("utf-8", "replace")] = (
            0 if binary else int(added),
            0 if binary else int(deleted),
            binary,
        )

    files: list[DiffFile] = []
    parts = raw.split(b"\0")
    for i in range(0, len(parts) - 1, 2):
        meta, path_b = parts[i], parts[i + 1]
        if not meta.startswith(b":"):
            continue
        old_mode, new_mode, _old_sha, _new_sha, status = meta[1:].decode().split(" ")
        name = path_b.decode("utf-8", "replace")
        kind = _STATUS.get(status[:1], "modified")
        mode = old_mode if kind == "deleted" else new_mode
        files.append(
            DiffFile(
                path=name,
                status=cast(Literal["added", "modified", "deleted"], kind),
                mode=_mode(mode),
                old_mode=old_mode if kind == "modified" and old_mode != new_mode else None,
                binary=counts.get(name, (0, 0, False))[2],
            )
        )
    additions = sum(a for a, _, _ in counts.values())
    deletions = sum(d for _, d, _ in counts.values())
    return DiffResult(
        base_sha=base_sha,
        files=files,
        patch=patch.decode("utf-8", "replace"),
        patch_truncated=patch_truncated,
        stats=DiffStats(files=len(files), additions=additions, deletions=deletions),
    )
