"""diff: the workspace against base_sha, computed by git inside the box.

The helper prints three sections: `--raw -z` (modes, status), `--numstat -z` (counts, binary),
and the unified patch. Paths are repo-relative; renames are off, so a move is a delete + an add.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, cast

from service.channel.helper import Reply
from service.errors import PayloadTooLarge, SandboxFailed
from service.models import DiffFile, DiffResult, DiffStats
from service.tools import ops
from service.tools.call import Caps, Flags, HelperCall

Mode = Literal["100644", "100755", "120000", "160000"]
_STATUS = {"A": "added", "M": "modified", "T": "modified", "D": "deleted"}


@dataclass(frozen=True)
class DiffQuery:
    """The workspace against `base_sha`; `patch_cap` None: the service's output cap."""

    base_sha: str
    patch_cap: int | None = None


@dataclass(frozen=True)
class BlobsQuery:
    shas: tuple[str, ...]


def diff_call(q: DiffQuery, caps: Caps) -> HelperCall:
    cap = caps.output if q.patch_cap is None else min(q.patch_cap, caps.output)
    return HelperCall(
        "diff", ops.args(ops.DiffArgs(base=q.base_sha, patch_cap=cap)), extra_argv=(q.base_sha,)
    )


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
    timed_out: bool = False

    @property
    def patch_sha256(self) -> str:
        """The hash of the whole patch (as git printed it, before any cap for an answer)."""
        return hashlib.sha256(self.patch).hexdigest()

    def complete(self) -> Changes:
        """These changes, or an error when git in the box did not finish in time."""
        if self.timed_out:
            raise SandboxFailed("the diff did not finish within the tool timeout", {"timed_out": True})
        return self


def parse_changes(q: DiffQuery, reply: Reply) -> Changes:
    """The helper's three sections → changes (raw + numstat) and the patch bytes."""
    out = ops.DiffOut.model_validate(reply.result)
    payload = reply.body
    try:
        raw_len, num_len, _ = (int(n) for n in out.sections)
    except (TypeError, ValueError) as e:
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
    return Changes(changes, payload[raw_len + num_len :], out.patch_truncated)


def changes_interrupted(q: DiffQuery, flags: Flags) -> Changes:
    return Changes([], b"", True, timed_out=True)


def to_result(base_sha: str, parsed: Changes, patch_cap: int) -> DiffResult:
    """The diff route's answer from the changes."""
    if parsed.timed_out:
        return DiffResult(
            base_sha=base_sha,
            files=[],
            patch="",
            patch_truncated=True,
            stats=DiffStats(files=0, additions=0, deletions=0),
            timed_out=True,
        )
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
        patch_sha256=None if parsed.output_truncated else parsed.patch_sha256,
        stats=DiffStats(
            files=len(files),
            additions=sum(c.additions for c in parsed.changes),
            deletions=sum(c.deletions for c in parsed.changes),
        ),
    )


def blobs_call(q: BlobsQuery, caps: Caps) -> HelperCall:
    """Blobs from the box's own object store (binary-safe, one call): `git cat-file --batch`."""
    return HelperCall("read_blobs", ops.args(ops.ReadBlobsArgs(shas=list(q.shas), cap=caps.output)))


def parse_blobs(q: BlobsQuery, reply: Reply) -> dict[str, bytes]:
    out = ops.ReadBlobsOut.model_validate(reply.result)
    blobs: dict[str, bytes] = {}
    pos = 0
    for b in out.blobs:
        blobs[b.sha] = reply.body[pos : pos + b.size]
        pos += b.size
    if pos != len(reply.body):
        raise SandboxFailed("the sandbox helper gave a malformed blob answer", {})
    return blobs


def blobs_interrupted(q: BlobsQuery, flags: Flags) -> dict[str, bytes]:
    raise PayloadTooLarge(
        "reading the changed files out of the sandbox did not finish within the tool timeout; "
        "commit fewer or smaller binary files",
        {"timed_out": flags["timed_out"]},
    )
