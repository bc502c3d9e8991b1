"""The model's side of a fix: a plain `messages.create` tool-use loop over the sandbox's tools.

Why not the SDK's tool runner: in anthropic 2.10 `client.beta.messages.tool_runner` exists only in
the beta namespace and by default keeps the conversation in a server-side message thread (after the
first turn it sends only the new messages, no tools or system prompt). That ties the bot to a beta
feature a gateway, a proxy or a recorded test double may not implement, and it hides the loop we
need to own: a cap on distinct files read that the model must see as a tool result, tool errors
returned as `is_error` results instead of exceptions, a cap on turns, exact token accounting per
round, and one conversation that carries the gates' findings from round to round. The stateless
Messages API loop does all of that in a page of code, and every request is complete in itself.

`ToolBox` maps the five tools onto the control API (never onto the local disk): `read_file`
(numbered), `replace_in_file` (exact edits — the default way to change code), `write_file` (new
files), `search_in_repo`, `list_directory`. It also remembers each edited file's content at the
base commit, so the caller can put the workspace back to an earlier round's state.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from anthropic import AsyncAnthropic
from anthropic.types import MessageParam, TextBlockParam, ToolParam, ToolResultBlockParam

from bot.client import (
    ApiError,
    DockyardClient,
    DockyardClientError,
    FileNotFound,
    JobNotFound,
)
from bot.usage import Ledger

READ_LINES_DEFAULT = 800  # lines per read_file call unless the model asks for a range
TOOL_RESULT_CAP = 60_000  # characters of one tool result sent back to the model
SEARCH_RESULTS = 80

TOOLS: list[ToolParam] = [
    {
        "name": "read_file",
        "description": (
            "Read a text file of the repository. Lines come numbered (`cat -n` style: the number, a tab, "
            "the line); the numbers are not part of the file. Reads at most "
            f"{READ_LINES_DEFAULT} lines at a time: pass start_line/end_line for other parts. There is a "
            "cap on how many distinct files you may read; re-reading one costs nothing against it."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "repository-relative path, e.g. src/app.py"},
                "start_line": {"type": "integer", "minimum": 1, "description": "first line (1-based)"},
                "end_line": {"type": "integer", "minimum": 1, "description": "last line (inclusive)"},
            },
            "required": ["path"],
        },
    },
    {
        "name": "replace_in_file",
        "description": (
            "Replace exact text in an existing file: the default way to change code. `old` must match the "
            "file byte for byte (indentation and blank lines included, no line-number prefixes) and occur "
            "exactly `expected_count` times (default 1); otherwise nothing changes and the error lists "
            "where it occurs or the closest lines. Returns the changed region with line numbers."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "old": {"type": "string", "description": "the exact text to replace (non-empty)"},
                "new": {"type": "string", "description": "the replacement text"},
                "expected_count": {"type": "integer", "minimum": 1, "default": 1},
            },
            "required": ["path", "old", "new"],
        },
    },
    {
        "name": "write_file",
        "description": (
            "Create a NEW file with the given content (parent folders are created). Existing files are "
            "changed with replace_in_file, not rewritten."
        ),
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
    {
        "name": "search_in_repo",
        "description": (
            "Search the repository's files for a regular expression (or a fixed string). Returns "
            "`path:line:column: text` lines."
        ),
        "input_schema": {
            "type": "object",
            "properties": {
                "pattern": {"type": "string"},
                "path": {"type": "string", "description": "folder or file to search (default: all)"},
                "glob": {"type": "string", "description": "only files matching this glob, e.g. *.py"},
                "fixed_string": {"type": "boolean", "default": False},
                "case_sensitive": {"type": "boolean", "default": True},
            },
            "required": ["pattern"],
        },
    },
    {
        "name": "list_directory",
        "description": "List a folder of the repository (files with sizes, folders), `depth` levels deep.",
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "default": "."},
                "depth": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
            },
        },
    },
]


class ToolInputError(Exception):
    """The model called a tool with input that does not fit its schema."""


class FatalToolError(Exception):
    """The sandbox is gone (the job vanished): no tool can work any more."""


def normalize(path: str) -> str:
    p = posixpath.normpath(path.strip().lstrip("/") or ".")
    return "." if p in ("", ".") else p


UNKNOWN = object()  # a base content the bot could not capture (binary, or over the read cap)


@dataclass
class ToolEvent:
    """One executed tool call, for the process log."""

    name: str
    path: str | None
    ok: bool
    note: str


@dataclass
class ToolBox:
    """The sandbox's tools for one job, as the model sees them."""

    client: DockyardClient
    job_id: str
    max_files: int
    files_read: list[str] = field(default_factory=list)  # distinct, in order
    base: dict[str, str | object | None] = field(
        default_factory=dict
    )  # path -> content at base (None: absent)
    created: set[str] = field(default_factory=set)
    events: list[ToolEvent] = field(default_factory=list)
    on_event: Callable[[ToolEvent], Awaitable[None]] | None = None

    # --- dispatch ---------------------------------------------------------------------------------

    async def run(self, name: str, args: dict[str, Any]) -> tuple[str, bool]:
        """Execute one tool call: (text for the model, is_error). Never raises for the model's
        mistakes or the service's refusals; only when the job itself is gone."""
        handler = {
            "read_file": self._read_file,
            "replace_in_file": self._replace_in_file,
            "write_file": self._write_file,
            "search_in_repo": self._search,
            "list_directory": self._list_directory,
        }.get(name)
        path = args.get("path") if isinstance(args.get("path"), str) else None
        if handler is None:
            text, ok = f"unknown tool {name!r}; the tools are: {', '.join(t['name'] for t in TOOLS)}", False
        else:
            try:
                text, ok = await handler(args), True
            except JobNotFound as e:
                raise FatalToolError(f"the sandbox job is gone: {e.message}") from e
            except ToolInputError as e:
                text, ok = f"invalid input for {name}: {e}", False
            except ApiError as e:
                text, ok = _describe_api_error(e), False
            except DockyardClientError as e:
                text, ok = f"the sandbox did not answer: {e}", False
        if len(text) > TOOL_RESULT_CAP:
            text = text[:TOOL_RESULT_CAP] + f"\n[... cut at {TOOL_RESULT_CAP} characters]"
        event = ToolEvent(
            name, normalize(path) if path else None, ok, text.splitlines()[0][:200] if text else ""
        )
        self.events.append(event)
        if self.on_event is not None:
            await self.on_event(event)
        return text, not ok

    # --- the tools --------------------------------------------------------------------------------

    async def read(self, path: str, start_line: int = 1, end_line: int | None = None) -> str:
        """read_file with the file cap: what the model (and the starting set) read."""
        path = normalize(path)
        if path not in self.files_read and len(self.files_read) >= self.max_files:
            raise ToolInputError(
                f"file limit reached: you have already read {len(self.files_read)} distinct files, the "
                f"maximum for this fix (CODE_FIX_MAX_FILES={self.max_files}). You may re-read any of them "
                f"({', '.join(self.files_read)}) or search, but not open new files. Work with what you have."
            )
        if end_line is None:
            end_line = start_line + READ_LINES_DEFAULT - 1
        if end_line < start_line:
            raise ToolInputError("end_line is before start_line")
        result = await self.client.read_file(
            self.job_id, path, start_line=start_line, end_line=end_line, numbered=True
        )
        if path not in self.files_read:
            self.files_read.append(path)
        header = f"{result.path} — lines {result.start_line}-{result.end_line} of {result.total_lines}"
        more = ""
        if result.end_line < result.total_lines:
            left = result.total_lines - result.end_line
            more = f"\n[{left} more lines: read on with start_line={result.end_line + 1}]"
        if result.truncated:
            more += "\n[cut at the service's read cap: read a narrower range]"
        if result.timed_out:
            more += "\n[the read timed out]"
        return f"{header}\n{result.content}{more}"

    async def _read_file(self, args: dict[str, Any]) -> str:
        return await self.read(
            _str(args, "path"), _int(args, "start_line", 1) or 1, _int(args, "end_line", None)
        )

    async def capture_base(self, path: str) -> None:
        """Remember `path`'s content before the first edit (None when it does not exist)."""
        path = normalize(path)
        if path in self.base:
            return
        try:
            r = await self.client.read_file(self.job_id, path)
            self.base[path] = UNKNOWN if r.truncated else r.content
        except FileNotFound:
            self.base[path] = None
        except ApiError:
            self.base[path] = UNKNOWN

    async def _replace_in_file(self, args: dict[str, Any]) -> str:
        path, old, new = normalize(_str(args, "path")), _str(args, "old"), _str(args, "new", allow_empty=True)
        count = _int(args, "expected_count", 1) or 1
        if not old:
            raise ToolInputError("`old` must not be empty; to create a file use write_file")
        if old == new:
            raise ToolInputError("`old` and `new` are the same: nothing would change")
        await self.capture_base(path)
        r = await self.client.replace_in_file(self.job_id, path, old=old, new=new, expected_count=count)
        return f"replaced {r.replacements} occurrence(s) in {r.path}:\n{r.snippet}"

    async def _write_file(self, args: dict[str, Any]) -> str:
        path, content = normalize(_str(args, "path")), _str(args, "content", allow_empty=True)
        await self.capture_base(path)
        if self.base.get(path) is not None and path not in self.created:
            raise ToolInputError(
                f"{path} already exists: change it with replace_in_file (write_file only creates new files)"
            )
        r = await self.client.write_file(self.job_id, path, content)
        self.created.add(path)
        return f"wrote {r.bytes_written} bytes to {r.path}" + (" (new file)" if r.created else "")

    async def _search(self, args: dict[str, Any]) -> str:
        r = await self.client.search(
            self.job_id,
            _str(args, "pattern"),
            path=normalize(str(args.get("path") or ".")),
            glob=str(args["glob"]) if args.get("glob") else None,
            fixed_string=bool(args.get("fixed_string", False)),
            case_sensitive=bool(args.get("case_sensitive", True)),
            max_results=SEARCH_RESULTS,
        )
        if not r.matches:
            return f"no match in {r.files_searched} files"
        lines = [f"{m.path}:{m.line}:{m.column}: {m.text.rstrip()[:300]}" for m in r.matches]
        tail = "\n[more matches not shown: narrow the search]" if r.truncated else ""
        return f"{len(r.matches)} match(es) in {r.files_searched} files searched:\n" + "\n".join(lines) + tail

    async def _list_directory(self, args: dict[str, Any]) -> str:
        depth = max(1, min(5, _int(args, "depth", 1) or 1))
        r = await self.client.list_directory(
            self.job_id, normalize(str(args.get("path") or ".")), depth=depth
        )
        lines = [f"{e.path}/" if e.type == "dir" else f"{e.path} ({e.size} bytes)" for e in r.entries]
        tail = "\n[listing truncated]" if r.truncated else ""
        return "\n".join(lines[:1000]) + tail if lines else "(empty folder)"


def _str(args: dict[str, Any], key: str, *, allow_empty: bool = False) -> str:
    value = args.get(key)
    if not isinstance(value, str):
        raise ToolInputError(f"`{key}` is required and must be a string")
    if not allow_empty and not value.strip():
        raise ToolInputError(f"`{key}` must not be empty")
    return value


def _int(args: dict[str, Any], key: str, default: int | None) -> int | None:
    value = args.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ToolInputError(f"`{key}` must be an integer")
    try:
        return int(value)
    except ValueError:
        raise ToolInputError(f"`{key}` must be an integer") from None


def _describe_api_error(e: ApiError) -> str:
    text = f"error {e.code}: {e.message}"
    if e.details:
        text += "\ndetails: " + json.dumps(e.details, ensure_ascii=False)[:4000]
    return text


# --- the conversation -------------------------------------------------------------------------------


@dataclass
class Turn:
    """What one round of the tool loop produced."""

    summary: str
    stop_reason: str | None
    model_calls: int
    tool_calls: int
    hit_turn_cap: bool


CUT_TOOL_CALL = (
    "Not run: your answer hit the output limit inside this call, so its input may be incomplete. "
    "Send it again; split a large edit into several smaller replace_in_file calls."
)


def _cache_marked(messages: list[MessageParam]) -> list[MessageParam]:
    """The conversation with a cache breakpoint on its newest block, so the next call reads the
    whole prefix from the cache instead of paying for it again. Only the copy sent is marked: the
    API allows 4 breakpoints per request, and they would pile up in the kept conversation."""
    if not messages or isinstance(messages[-1]["content"], str):
        return messages
    last = messages[-1]
    blocks = list(last["content"])
    if not blocks:
        return messages
    blocks[-1] = cast(Any, {**cast(dict[str, Any], blocks[-1]), "cache_control": {"type": "ephemeral"}})
    return [*messages[:-1], cast(MessageParam, {**last, "content": blocks})]


@dataclass
class Agent:
    """One conversation with the model, kept across rounds (each round adds the gates' findings)."""

    llm: AsyncAnthropic
    model: str
    max_tokens: int
    max_turns: int
    tools: ToolBox
    ledger: Ledger
    system: str
    messages: list[MessageParam] = field(default_factory=list)

    def _add_user(self, blocks: Sequence[TextBlockParam | ToolResultBlockParam]) -> None:
        """Append user content, merged into the last message when that is the user's already
        (tool results and the next round's text must share one turn)."""
        if self.messages and self.messages[-1]["role"] == "user":
            last = self.messages[-1]
            content = last["content"]
            merged: list[Any] = (
                [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
            )
            merged.extend(blocks)
            last["content"] = merged
        else:
            self.messages.append({"role": "user", "content": list(blocks)})

    async def run_round(self, prompt: str) -> Turn:
        """Send `prompt`, then run tool calls until the model answers without one (or the turn cap)."""
        self._add_user([{"type": "text", "text": prompt}])
        calls = tools_run = 0
        stop: str | None = None
        summary = ""
        system: list[TextBlockParam] = [
            {"type": "text", "text": self.system, "cache_control": {"type": "ephemeral"}}
        ]
        while calls < self.max_turns:
            calls += 1
            response = await self.llm.messages.create(
                model=self.model,
                max_tokens=self.max_tokens,
                system=system,
                tools=TOOLS,
                messages=_cache_marked(self.messages),
            )
            self.ledger.add(response.usage)
            stop = response.stop_reason
            content = [cast(dict[str, Any], block.to_dict()) for block in response.content]
            self.messages.append(cast(MessageParam, {"role": "assistant", "content": content}))
            texts = [b.text for b in response.content if b.type == "text"]
            if texts:
                summary = "\n".join(texts).strip()
            uses = [b for b in response.content if b.type == "tool_use"]
            if uses:
                results: list[ToolResultBlockParam] = []
                for i, use in enumerate(uses):
                    if stop == "max_tokens" and i == len(uses) - 1:
                        # Cut off at the output limit: its input may be cut too. Never apply it.
                        text, is_error = CUT_TOOL_CALL, True
                    else:
                        text, is_error = await self.tools.run(use.name, dict(use.input))
                        tools_run += 1
                    results.append(
                        {"type": "tool_result", "tool_use_id": use.id, "content": text, "is_error": is_error}
                    )
                self._add_user(results)
                continue
            if stop == "max_tokens":
                self._add_user(
                    [{"type": "text", "text": "You hit the output limit. Continue; keep each edit small."}]
                )
                continue
            if stop == "pause_turn":
                continue
            return Turn(summary, stop, calls, tools_run, hit_turn_cap=False)
        return Turn(summary, stop, calls, tools_run, hit_turn_cap=True)

    async def complete(self, system: str, prompt: str, max_tokens: int = 2048) -> str:
        """A one-off question outside the conversation (the self-review): its text answer."""
        response = await self.llm.messages.create(
            model=self.model,
            max_tokens=max_tokens,
            system=system,
            messages=[{"role": "user", "content": prompt}],
        )
        self.ledger.add(response.usage)
        return "".join(b.text for b in response.content if b.type == "text")
