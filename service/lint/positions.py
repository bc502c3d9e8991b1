"""`new` is positional: base diagnostics move through the job's diff, a current one is new only
when no base diagnostic of the same (code, message) lands on its line.

Each changed file's patch hunks give a line map old → new: a line outside every hunk shifts by the
hunks above it; a context line inside a hunk maps to its new number; a removed line has no mapping.
The verdict, per (path, code, message):

1. a current diagnostic is OLD when a base diagnostic of the same key maps exactly to its line
   (each base diagnostic vouches for one current diagnostic);
2. else it is OLD when it sits on an added line whose text (whitespace-stripped) equals a removed
   line that carried a base diagnostic of the same key: the line was moved or re-indented, not
   written;
3. else it is NEW.

No window of "nearby" lines is tolerated: with duplicate messages a window would let the old
occurrence vouch for an injected one a few lines away, which is the defect this replaces. A
diagnostic on a line the change rewrote (e.g. `import os` → `import os  # note`) is new: the
change touched the line, the author owns what is on it.

A file whose patch is missing (a cut diff, a binary change) falls back to matching counts of
(path, code, message), which is the best that can be said without positions.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from service.lint.parsers import Diagnostic

_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {b"n": b"\n", b"t": b"\t", b'"': b'"', b"\\": b"\\", b"a": b"\a", b"b": b"\b", b"f": b"\f"}
_ESCAPES |= {b"r": b"\r", b"v": b"\v"}


@dataclass
class FileMap:
    """One file's line map through its hunks (old = at base_sha, new = the workspace)."""

    # (old_start, old_len, new_start, new_len) in file order
    hunks: list[tuple[int, int, int, int]] = field(default_factory=list)
    context: dict[int, int] = field(default_factory=dict)  # old line inside a hunk → new line
    removed: dict[int, str] = field(default_factory=dict)  # old line → its text
    added: dict[int, str] = field(default_factory=dict)  # new line → its text

    def to_new(self, old: int) -> int | None:
        starts = [h[0] if h[1] else h[0] + 1 for h in self.hunks]  # a pure insertion sits AFTER old_start
        i = bisect_right(starts, old) - 1
        if i >= 0:
            o_start, o_len, _, _ = self.hunks[i]
            first = o_start if o_len else o_start + 1
            if first <= old < first + o_len:
                return self.context.get(old)  # inside the hunk: context maps, removed does not
        shift = sum(h[3] - h[1] for h in self.hunks[: i + 1])
        return old + shift


def _unquote(raw: bytes) -> bytes:
    """git's C-style quoting of a path ("a/x\\ty") → the raw bytes."""
    if not (raw.startswith(b'"') and raw.endswith(b'"')):
        return raw
    body, out, i = raw[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i : i + 1]
        if c == b"\\" and i + 1 < len(body):
            nxt = body[i + 1 : i + 2]
            if nxt.isdigit() and i + 3 < len(body) + 1:
                out += bytes([int(body[i + 1 : i + 4], 8)])
                i += 4
                continue
            out += _ESCAPES.get(nxt, nxt)
            i += 2
            continue
        out += c
        i += 1
    return bytes(out)


def _path(line: bytes, prefix: bytes) -> str | None:
    rest = line[4:].rstrip(b"\n").rstrip(b"\t")
    if rest == b"/dev/null":
        return None
    rest = _unquote(rest)
    if rest.startswith(prefix):
        rest = rest[len(prefix) :]
    return rest.decode("utf-8", "replace")


def parse_patch(patch: bytes, *, truncated: bool = False) -> dict[str, FileMap]:
    """A `git diff --patch` → each file's line map. With `truncated`, the last file is dropped."""
    maps: dict[str, FileMap] = {}
    current: FileMap | None = None
    old_path: str | None = None
    last: str | None = None
    old_no = new_no = o_left = n_left = 0
    for line in patch.splitlines(keepends=True):
        if o_left <= 0 and n_left <= 0:  # between hunks: headers
            if line.startswith(b"diff --git "):
                current, old_path = None, None
                continue
            if line.startswith(b"--- "):
                old_path = _path(line, b"a/")
                continue
            if line.startswith(b"+++ "):
                name = _path(line, b"b/") or old_path
                if name is not None:
                    current = maps[name] = FileMap()
                    last = name
                continue
            m = _HUNK.match(line)
            if m and current is not None:
                o_start, o_left = int(m[1]), int(m[2] if m[2] is not None else 1)
                n_start, n_left = int(m[3]), int(m[4] if m[4] is not None else 1)
                current.hunks.append((o_start, o_left, n_start, n_left))
                old_no, new_no = o_start, n_start
            continue
        assert current is not None
        text = line[1:].rstrip(b"\r\n").decode("utf-8", "replace")
        tag = line[:1]
        if tag == b" ":
            current.context[old_no] = new_no
            old_no, new_no, o_left, n_left = old_no + 1, new_no + 1, o_left - 1, n_left - 1
        elif tag == b"-":
            current.removed[old_no] = text
            old_no, o_left = old_no + 1, o_left - 1
        elif tag == b"+":
            current.added[new_no] = text
            new_no, n_left = new_no + 1, n_left - 1
    if truncated and last is not None:
        maps.pop(last, None)
    return maps


def judge_new(
    current: Sequence[Diagnostic],
    base: Sequence[Diagnostic],
    maps: Mapping[str, FileMap],
    changed: Mapping[str, str],
) -> list[bool]:
    """For each current diagnostic (in order): is it new? `changed`: path → added|modified|deleted;
    a path not in `changed` is unchanged: all its findings are old."""
    new = [True] * len(current)
    by_path: dict[str, list[int]] = defaultdict(list)
    for i, d in enumerate(current):
        by_path[d.path].append(i)
    base_by_path: dict[str, list[Diagnostic]] = defaultdict(list)
    for b in base:
        base_by_path[b.path].append(b)
    for path, idxs in by_path.items():
        if path not in changed:  # an unchanged file cannot have new findings (no base run needed)
            for i in idxs:
                new[i] = False
            continue
        olds = base_by_path.get(path, [])
        if changed.get(path) == "added" or not olds:
            continue
        fmap = maps.get(path)
        if fmap is None and path in changed:  # modified, but no patch to map through: count it
            counts = Counter((b.code, b.message) for b in olds)
            for i in idxs:
                ckey = (current[i].code, current[i].message)
                if counts[ckey] > 0:
                    counts[ckey] -= 1
                    new[i] = False
            continue
        at: Counter[tuple[str, str, int]] = Counter()
        moved: Counter[tuple[str, str, str]] = Counter()
        for b in olds:
            line = b.line if fmap is None else fmap.to_new(b.line)
            if line is not None:
                at[(b.code, b.message, line)] += 1
            elif fmap is not None and b.line in fmap.removed:
                moved[(b.code, b.message, fmap.removed[b.line].strip())] += 1
        pending = []
        for i in idxs:
            d = current[i]
            key = (d.code, d.message, d.line)
            if at[key] > 0:
                at[key] -= 1
                new[i] = False
            else:
                pending.append(i)
        for i in pending:
            d = current[i]
            if fmap is None or d.line not in fmap.added:
                continue
            mkey = (d.code, d.message, fmap.added[d.line].strip())
            if moved[mkey] > 0:
                moved[mkey] -= 1
                new[i] = False
    return new
