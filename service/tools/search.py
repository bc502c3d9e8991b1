"""search: ripgrep run by the helper over what git sees (every tracked file, whatever .gitignore
says, and untracked files that are not ignored); a match's text always holds the match."""

from __future__ import annotations

from service.channel.helper import Reply
from service.models import SearchMatch, SearchRequest, SearchResult
from service.tools import ops
from service.tools.call import Caps, Flags, HelperCall

MAX_TEXT = 2000  # characters of a match's line; a longer line gives a window around the match


def search_call(req: SearchRequest, caps: Caps) -> HelperCall:
    a = ops.SearchArgs(
        path=req.path,
        pattern=req.pattern,
        glob=req.glob,
        fixed_string=req.fixed_string,
        case_sensitive=req.case_sensitive,
        max_results=req.max_results,
        max_text=MAX_TEXT,
    )
    return HelperCall("search", ops.args(a), path=req.path, extra_argv=(req.pattern,))


def search_answer(req: SearchRequest, reply: Reply) -> SearchResult:
    out = ops.SearchOut.model_validate(reply.result)
    return SearchResult(
        matches=[SearchMatch(path=m.path, line=m.line, column=m.column, text=m.text) for m in out.matches],
        truncated=out.truncated,
        files_searched=out.files_searched,
    )


def search_interrupted(req: SearchRequest, flags: Flags) -> SearchResult:
    return SearchResult(matches=[], truncated=True, files_searched=0, **flags)
