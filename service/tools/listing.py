"""list_directory: the helper lists breadth-first (sorted, `.git` hidden, links not followed)."""

from __future__ import annotations

from service.channel.helper import Reply
from service.models import DirectoryEntry, ListDirectoryRequest, ListDirectoryResult
from service.tools import ops
from service.tools.call import Caps, Flags, HelperCall


def list_call(req: ListDirectoryRequest, caps: Caps) -> HelperCall:
    a = ops.ListDirectoryArgs(path=req.path, depth=req.depth, max_entries=caps.max_entries)
    return HelperCall("list_directory", ops.args(a), path=req.path)


def list_answer(req: ListDirectoryRequest, reply: Reply) -> ListDirectoryResult:
    out = ops.ListDirectoryOut.model_validate(reply.result)
    entries = [DirectoryEntry(path=e.path, type=e.type, size=e.size) for e in out.entries]
    return ListDirectoryResult(path=req.path, entries=entries, truncated=out.truncated)


def list_interrupted(req: ListDirectoryRequest, flags: Flags) -> ListDirectoryResult:
    return ListDirectoryResult(path=req.path, entries=[], truncated=True, **flags)
