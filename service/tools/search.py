"""search: ripgrep's JSON lines, run by the helper after it has confined the path."""

from __future__ import annotations

import base64
import json
from typing import Any

from service.errors import InvalidPattern, InvalidRequest, SandboxFailed
from service.models import SearchMatch, SearchRequest, SearchResult
from service.sandbox.backend import ExecResult
from service.tools.protocol import TOOL, ToolCall, refusal

MAX_TEXT = 2000


def search_call(req: SearchRequest) -> ToolCall:
    argv = [
        TOOL,
        "search",
        req.path,
        req.pattern,
        req.glob or "",
        "1" if req.fixed_string else "0",
        "1" if req.case_sensitive else "0",
        # ripgrep's --max-count is per file; one more than asked tells us the answer was truncated.
        str(req.max_results + 1),
    ]
    return ToolCall("tool.search", argv, path=req.path)


def _text(obj: dict[str, Any]) -> bytes:
    if "text" in obj:
        return str(obj["text"]).encode("utf-8")
    return base64.b64decode(obj.get("bytes", ""))


def _rel(path: bytes) -> str:
    text = path.decode("utf-8", "replace")
    return text[2:] if text.startswith("./") else text


def parse_search(req: SearchRequest, result: ExecResult) -> SearchResult:
    err = refusal(result)
    if err is not None:
        raise err
    stderr = result.stderr.decode("utf-8", "replace")
    low = stderr.lower()
    # Exit 2 with no summary on stdout: ripgrep searched nothing, it refused its arguments (an
    # unreadable file mid-search is exit 2 too, but after a summary: that is a result).
    refused = result.exit_code == 2 and b'"type":"summary"' not in result.stdout and not result.timed_out
    if refused and "glob" in low and "error" in low:
        raise InvalidRequest(f"invalid glob: {stderr.strip()[-500:]}", {"glob": req.glob})
    if refused and any(k in low for k in ("regex", "size limit", "pattern")):
        raise InvalidPattern(f"invalid regular expression: {stderr.strip()[-500:]}", {"pattern": req.pattern})
    if refused:
        raise SandboxFailed(
            f"ripgrep refused the search: {stderr.strip()[-500:]}",
            {"stderr": stderr[-2000:]},
        )
    if result.exit_code not in (0, 1, 2) and not (result.timed_out or result.output_truncated):
        raise SandboxFailed(f"ripgrep failed (exit {result.exit_code})", {"stderr": stderr[-2000:]})

    matches: list[SearchMatch] = []
    truncated = result.timed_out or result.output_truncated
    files_begun = 0
    files_searched: int | None = None
    lines = result.stdout.split(b"\n")
    if result.output_truncated and lines:
        lines.pop()  # the last line may be cut
    for raw in lines:
        if not raw.strip():
            continue
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        kind, data = event.get("type"), event.get("data", {})
        if kind == "begin":
            files_begun += 1
        elif kind == "summary":
            files_searched = int(data.get("stats", {}).get("searches", files_begun))
        elif kind == "match":
            if len(matches) >= req.max_results:
                truncated = True
                continue
            line_bytes = _text(data["lines"])
            subs = data.get("submatches") or [{"start": 0}]
            column = len(line_bytes[: int(subs[0]["start"])].decode("utf-8", "replace")) + 1
            text = line_bytes.decode("utf-8", "replace").rstrip("\r\n")
            matches.append(
                SearchMatch(
                    path=_rel(_text(data["path"])),
                    line=int(data["line_number"]),
                    column=column,
                    text=text[:MAX_TEXT],
                )
            )
    return SearchResult(
        matches=matches,
        truncated=truncated,
        files_searched=files_searched if files_searched is not None else files_begun,
        timed_out=result.timed_out,
        oom_killed=result.oom_killed,
    )
