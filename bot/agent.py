"""The model's side of a fix: a plain `messages.create` tool-use loop over the sandbox's tools.

Why not the SDK's tool runner: in anthropic 2.10 `client.beta.messages.tool_runner` exists only in
the beta namespace and by default keeps the conversation in a server-side message thread (after the
first turn it sends only the new messages, no tools or system prompt). That ties the bot to a beta
feature a gateway, a proxy or a recorded test double may not implement, and it hides the loop we
need to own: a cap on distinct files read that the model must see as a tool result, tool errors
returned as `is_error` results instead of exceptions, a cap on turns, exact token accounting per
round, and one conversation that carries the gates' findings from round to round. The stateless
Messages API loop does all of that in a page of code, and every request is complete in itself.

`ToolBox` maps the tools onto the control API (never onto the local disk). Files are viewed and
edited with Claude's own text editor tool (`str_replace_based_edit_tool`, type
`text_editor_20250728`), whose `tool_use` input goes untouched to the service's endpoint of that
name; it replaces the service's read_file, write_file, replace_in_file and list_directory in the
model's list (`SUPERSEDED`). The other tools' names, descriptions and input schemas come from the
service (`x-agent-tools` in its `/openapi.json`, derived from the same declarations as its routes);
the bot only appends its own rules (`POLICY`). The bot keeps its own rules on the editor too: the
distinct-file cap (a view of a file, or an edit of a file not yet touched, counts) and `create`
only for new files. It also remembers each touched file's content at the base commit, so the
caller can put the workspace back to an earlier round's state.
"""

from __future__ import annotations

import copy
import json
import posixpath
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from anthropic import AsyncAnthropic
from anthropic.types import (
    MessageParam,
    TextBlockParam,
    ToolParam,
    ToolResultBlockParam,
    ToolTextEditor20250728Param,
    ToolUnionParam,
)
from dockyard_client.errors import APIError, DockyardError, FileNotFound, JobNotFound
from dockyard_client.models import AgentTool

from bot.client import DockyardPort
from bot.usage import Ledger

READ_LINES_DEFAULT = 800  # lines per read_file call unless the model asks for a range
TOOL_RESULT_CAP = 60_000  # characters of one tool result sent back to the model
SEARCH_RESULTS = 80  # matches per search at most

# Claude's text editor tool: typed, so its schema is the model's own (no description to add; the
# bot's rules for it are in the system prompt). Its results are cut at the bot's cap, as it says.
EDITOR: Final = "str_replace_based_edit_tool"
EDITOR_TOOL: ToolTextEditor20250728Param = {
    "type": "text_editor_20250728",
    "name": EDITOR,
    "max_characters": TOOL_RESULT_CAP,
}
WORKSPACE = "/workspace"  # where the job's tree is (the service maps `/workspace/…` the same way)
# The service's tools the editor stands in for: not offered to the model (not "unmapped" either).
SUPERSEDED = ("read_file", "write_file", "replace_in_file", "list_directory")
# What the process log calls an editor command: the service's tool it is made of.
EDITOR_EVENTS = {"create": "write_file", "str_replace": "replace_in_file", "insert": "replace_in_file"}

# The bot's own rules for the service's tools, appended to the service's descriptions: the ONE place
# where the model learns how this bot limits a tool (names, descriptions and input schemas are the
# service's, from `x-agent-tools`).
POLICY: dict[str, str] = {
    "delete_file": "Only when the fix needs the file gone; never to rewrite a file (use str_replace).",
    "move_file": "Only when the fix needs the file under another name; its content is kept as it is.",
    "search": f"At most {SEARCH_RESULTS} matches are shown; narrow the search when there are more.",
}


def model_tools(service_tools: Sequence[AgentTool], *, max_files: int) -> list[ToolUnionParam]:
    """The model's tool list: Claude's text editor, then the service's tools (names, schemas) with
    the bot's POLICY notes."""
    out: list[ToolUnionParam] = [copy.deepcopy(EDITOR_TOOL)]
    for tool in service_tools:
        note = POLICY.get(tool.name, "").replace("{max_files}", str(max_files))
        description = f"{tool.description.rstrip()} {note}".strip()
        param: ToolParam = {
            "name": tool.name,
            "description": description,
            "input_schema": cast(Any, copy.deepcopy(tool.input_schema)),
        }
        out.append(param)
    return out


class ToolInputError(Exception):
    """The model called a tool with input that does not fit its schema."""


class FatalToolError(Exception):
    """The sandbox is gone (the job vanished): no tool can work any more."""


class ToolRefused(Exception):
    """A call the model must see fail, with this text as the tool_result (`is_error`)."""


class ToolDrift(Exception):
    """The service offers a tool the bot has no handler for (a strict ToolBox refuses to start)."""


def normalize(path: str) -> str:
    p = posixpath.normpath(path.strip().lstrip("/") or ".")
    return "." if p in ("", ".") else p


def editor_path(path: str) -> str | None:
    """The repository path the editor's `path` names, as the service maps it (`/workspace/…` or
    relative); None for any other absolute path, which the service refuses."""
    if path == WORKSPACE or path.startswith(WORKSPACE + "/"):
        return normalize(path[len(WORKSPACE) :])
    return None if path.startswith("/") else normalize(path)


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
    """The sandbox's tools for one job, as the model sees them.

    `service_tools` is what the service offers (`DockyardPort.agent_tools()`); the model is offered
    those the bot has a handler for. One without a handler is left out and named in `unmapped`
    (a newer service must not break an older bot), or refused at construction when `strict` (the
    tests: a drift between the service's registry and the bot fails there)."""

    client: DockyardPort
    job_id: str
    max_files: int
    service_tools: Sequence[AgentTool]
    strict: bool = False
    files_read: list[str] = field(default_factory=list)  # distinct, in order
    base: dict[str, str | object | None] = field(
        default_factory=dict
    )  # path -> content before the bot first touched it, i.e. at base (None: absent)
    created: set[str] = field(default_factory=set)  # files the model created: write_file may rewrite them
    present: dict[str, bool] = field(default_factory=dict)  # exists now, after the bot's own writes/moves
    events: list[ToolEvent] = field(default_factory=list)
    dirs: set[str] = field(default_factory=set)  # paths known to be folders (a view of one is free)
    on_event: Callable[[ToolEvent], Awaitable[None]] | None = None
    unmapped: list[str] = field(init=False)
    model_tools: list[ToolUnionParam] = field(init=False)

    def __post_init__(self) -> None:
        handlers = self._handlers()
        self.unmapped = [
            t.name for t in self.service_tools if t.name not in handlers and t.name not in SUPERSEDED
        ]
        if self.strict and self.unmapped:
            raise ToolDrift(
                f"the service offers tools the bot has no handler for: {', '.join(self.unmapped)}"
            )
        offered = [t for t in self.service_tools if t.name in handlers]
        self.model_tools = model_tools(offered, max_files=self.max_files)

    def _handlers(self) -> dict[str, Callable[[dict[str, Any]], Awaitable[str]]]:
        return {
            EDITOR: self._edit,
            "delete_file": self._delete_file,
            "move_file": self._move_file,
            "search": self._search,
        }

    @property
    def offered(self) -> list[str]:
        """The names of the tools the model is offered."""
        return [str(cast(dict[str, Any], t)["name"]) for t in self.model_tools]

    # --- dispatch ---------------------------------------------------------------------------------

    async def run(self, name: str, args: dict[str, Any]) -> tuple[str, bool]:
        """Execute one tool call: (text for the model, is_error). Never raises for the model's
        mistakes or the service's refusals; only when the job itself is gone."""
        offered = self.offered
        handler = self._handlers().get(name) if name in offered else None
        if handler is None:
            text, ok = f"unknown tool {name!r}; the tools are: {', '.join(offered)}", False
        else:
            try:
                text, ok = await handler(args), True
            except JobNotFound as e:
                raise FatalToolError(f"the sandbox job is gone: {e.message}") from e
            except ToolInputError as e:
                text, ok = f"invalid input for {name}: {e}", False
            except ToolRefused as e:
                text, ok = str(e), False
            except APIError as e:
                text, ok = _describe_api_error(e), False
            except DockyardError as e:
                text, ok = f"the sandbox did not answer: {e}", False
        if len(text) > TOOL_RESULT_CAP:
            text = text[:TOOL_RESULT_CAP] + f"\n[... cut at {TOOL_RESULT_CAP} characters]"
        note = text.splitlines()[0][:200] if text else ""
        event = ToolEvent(self._event_name(name, args), _event_path(name, args), ok, note)
        self.events.append(event)
        if self.on_event is not None:
            await self.on_event(event)
        return text, not ok

    # --- the tools --------------------------------------------------------------------------------

    async def read(self, path: str, start_line: int = 1, end_line: int | None = None) -> str:
        """read_file with the file cap: what the model (and the starting set) read."""
        path = normalize(path)
        self._check_cap(path)
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

    def _check_cap(self, path: str) -> None:
        """The distinct-file cap: a file not touched yet may not be viewed or edited past it."""
        if path not in self.files_read and len(self.files_read) >= self.max_files:
            raise ToolRefused(
                f"file limit reached: you have already opened {len(self.files_read)} distinct files, the "
                f"maximum for this fix (CODE_FIX_MAX_FILES={self.max_files}). You may view or edit any of "
                f"them again ({', '.join(self.files_read)}) or search, but not open or create new files. "
                "Work with what you have."
            )

    def _touched(self, path: str) -> None:
        if path not in self.files_read:
            self.files_read.append(path)

    async def _is_dir(self, path: str) -> bool:
        if path == ".":
            self.dirs.add(path)
        if path in self.dirs:
            return True
        if path in self.files_read:
            return False
        try:
            await self.client.list_directory(self.job_id, path, depth=1)
        except APIError:
            return False  # a file, or nothing: the view itself says which
        self.dirs.add(path)
        return True

    async def _edit(self, args: dict[str, Any]) -> str:
        """Claude's text editor: the input goes to the service untouched; the bot checks its own
        rules first (the file cap, `create` only for new files) and remembers what changed."""
        command, path = _str(args, "command"), _str(args, "path")
        rel = editor_path(path)  # None: outside the workspace, the service says so
        if rel is not None and command == "view":
            if not await self._is_dir(rel):
                self._check_cap(rel)
        elif rel is not None and command in EDITOR_EVENTS:
            self._check_cap(rel)
            await self.capture_base(rel)
            if command == "create" and self._exists(rel) and rel not in self.created:
                raise ToolRefused(
                    f"{path} already exists: change it with `str_replace` or `insert` (`create` only makes "
                    "new files in this fix, so an existing file is never rewritten from a partial copy)"
                )
        existed = rel is not None and self._exists(rel)
        r = await self.client.edit_tool(self.job_id, args)
        if r.is_error:
            raise ToolRefused(r.content)
        if rel is not None and rel not in self.dirs:
            self._touched(rel)
            if command == "create":
                if not existed:
                    self.created.add(rel)
                self.present[rel] = True
        return r.content

    def _event_name(self, name: str, args: dict[str, Any]) -> str:
        """The process log names an editor command by the service tool it is made of."""
        if name != EDITOR:
            return name
        command = args.get("command")
        if command == "view":
            path = args.get("path")
            rel = editor_path(path) if isinstance(path, str) else None
            return "list_directory" if rel is not None and rel in self.dirs else "read_file"
        return EDITOR_EVENTS.get(str(command), EDITOR)

    async def capture_base(self, path: str) -> None:
        """Remember `path`'s content before the bot first changes it (None when it does not exist):
        every handler that writes, deletes or moves a path calls this first."""
        path = normalize(path)
        if path in self.base:
            return
        try:
            r = await self.client.read_file(self.job_id, path)
            self.base[path] = UNKNOWN if r.truncated else r.content
        except FileNotFound:
            self.base[path] = None
        except APIError:
            self.base[path] = UNKNOWN

    def _exists(self, path: str) -> bool:
        """Whether `path` exists now (after `capture_base`): the bot's own changes, else the base."""
        return self.present.get(path, self.base.get(path) is not None)

    async def _delete_file(self, args: dict[str, Any]) -> str:
        path = normalize(_str(args, "path"))
        await self.capture_base(path)
        r = await self.client.delete_file(self.job_id, path)
        self.present[path] = False
        self.created.discard(path)
        return f"deleted {r.path}"

    async def _move_file(self, args: dict[str, Any]) -> str:
        src, dst = normalize(_str(args, "from")), normalize(_str(args, "to"))
        overwrite = bool(_bool(args, "overwrite", False))
        if src == dst:
            raise ToolInputError("`from` and `to` are the same path: nothing would move")
        await self.capture_base(src)
        await self.capture_base(dst)
        r = await self.client.move_file(self.job_id, src, dst, overwrite=overwrite)
        self.present[src], self.present[dst] = False, True
        if src in self.created:  # what the model created stays its own under the new name
            self.created.add(dst)
        else:
            self.created.discard(dst)
        self.created.discard(src)
        return f"moved {r.from_} to {r.to} (mode {r.mode})" + _ignored_note(r.to, r.ignored)

    async def _search(self, args: dict[str, Any]) -> str:
        wanted = _int(args, "max_results", SEARCH_RESULTS) or SEARCH_RESULTS
        r = await self.client.search(
            self.job_id,
            _str(args, "pattern"),
            path=normalize(str(args.get("path") or ".")),
            glob=str(args["glob"]) if args.get("glob") else None,
            fixed_string=bool(_bool(args, "fixed_string", False)),
            case_sensitive=bool(_bool(args, "case_sensitive", True)),
            max_results=max(1, min(wanted, SEARCH_RESULTS)),
        )
        if not r.matches:
            return f"no match in {r.files_searched} files"
        lines = [f"{m.path}:{m.line}:{m.column}: {m.text.rstrip()[:300]}" for m in r.matches]
        tail = "\n[more matches not shown: narrow the search]" if r.truncated else ""
        return f"{len(r.matches)} match(es) in {r.files_searched} files searched:\n" + "\n".join(lines) + tail


def _event_path(name: str, args: dict[str, Any]) -> str | None:
    """The path a call is about, for the process log (`from → to` for a move)."""
    if name == "move_file" and isinstance(args.get("from"), str) and isinstance(args.get("to"), str):
        return f"{normalize(args['from'])} → {normalize(args['to'])}"
    path = args.get("path")
    if not isinstance(path, str) or not path.strip():
        return None
    return (editor_path(path) or path) if name == EDITOR else normalize(path)


def _ignored_note(path: str, ignored: bool) -> str:
    if not ignored:
        return ""
    return (
        f"\nnote: the repository's .gitignore excludes {path}, so it will NOT be part of the diff or "
        "the commit. If the fix needs it, choose a path that is not ignored."
    )


def _bool(args: dict[str, Any], key: str, default: bool | None) -> bool | None:
    value = args.get(key, default)
    if value is None or isinstance(value, bool):
        return value
    raise ToolInputError(f"`{key}` must be true, false or null")


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


def _describe_api_error(e: APIError) -> str:
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
    "Send it again; split a large edit into several smaller str_replace calls."
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
                tools=self.tools.model_tools,
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
