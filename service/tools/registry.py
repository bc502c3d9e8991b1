"""Every tool, declared once.

A `Tool` names its helper call builder, its answer, and its result when killed for time or memory.
An agent-facing tool also carries its `Exposure`: request and result models, summary, the text
agents read. From this table come the HTTP routes and their OpenAPI operations (service/app.py),
the agents' tool schemas (`agent_tools()`, served in `/openapi.json` as `x-agent-tools`, which the
bot reads), the audit action (`tool.NAME`), and the helper ops the channel must speak (a test
checks each against the helper's own schema).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from service.channel.helper import Reply
from service.models import (
    DeleteFileRequest,
    DeleteFileResult,
    EditorRequest,
    EditorResult,
    ListDirectoryRequest,
    ListDirectoryResult,
    MoveFileRequest,
    MoveFileResult,
    ReadFileRequest,
    ReadFileResult,
    ReplaceInFileRequest,
    ReplaceInFileResult,
    SearchRequest,
    SearchResult,
    WriteFileRequest,
    WriteFileResult,
)
from service.tools import diff, editor, files, listing, search
from service.tools.call import Caps, Flags, HelperCall

Req = TypeVar("Req")
Res = TypeVar("Res")
R = TypeVar("R")
S = TypeVar("S")


@dataclass(frozen=True)
class Exposure:
    """What callers see of a tool: its route's models and summary, and what an agent reads."""

    summary: str
    request: type[BaseModel]
    result: type[BaseModel]
    description: str
    agent_fields: tuple[str, ...] | None = None  # request fields an agent sets (None: all)
    agent_tool: bool = True  # listed in `x-agent-tools` (False: a model knows it by its own type)


@dataclass(frozen=True)
class Tool(Generic[Req, Res]):
    name: str
    call: Callable[[Req, Caps], HelperCall]
    answer: Callable[[Req, Reply], Res]
    interrupted: Callable[[Req, Flags], Res]
    # safe to send again on a fresh helper when the first one died mid-call (reads)
    idempotent: bool = False
    exposure: Exposure | None = None
    action_name: str | None = None

    @property
    def action(self) -> str:
        return self.action_name or f"tool.{self.name}"

    def via(self, composite: str) -> Tool[Req, Res]:
        """This tool called on behalf of `composite`: its audit records say so (`details.via`)."""
        build = self.call

        def call(req: Req, caps: Caps) -> HelperCall:
            c = build(req, caps)
            return replace(c, details={**c.details, "via": composite})

        return replace(self, call=call)


class Runner(Protocol):
    """Runs one tool call on the job a composite tool works on (audited as that tool)."""

    def __call__(self, tool: Tool[R, S], req: R, /) -> Awaitable[S]: ...


@dataclass(frozen=True)
class Composite(Generic[Req, Res]):
    """A route made of other tools' calls, each one audited as itself (with `via`: this name):
    `run` gets the request and a `Runner` for the job. Claude's text editor is one."""

    name: str
    run: Callable[[Req, Runner], Awaitable[Res]]
    exposure: Exposure

    @property
    def action(self) -> str:
        return f"tool.{self.name}"  # the `via` of its calls' records


AnyTool = Tool[Any, Any] | Composite[Any, Any]


READ_FILE: Tool[ReadFileRequest, ReadFileResult] = Tool(
    "read_file",
    files.read_call,
    files.read_answer,
    files.read_interrupted,
    idempotent=True,
    exposure=Exposure(
        "Read a file (line range, numbering)",
        ReadFileRequest,
        ReadFileResult,
        "Read a text file of the repository, optionally a line range (1-based, inclusive).",
        agent_fields=("path", "start_line", "end_line"),  # agents read numbered lines
    ),
)
WRITE_FILE: Tool[WriteFileRequest, WriteFileResult] = Tool(
    "write_file",
    files.write_call,
    files.write_answer,
    files.write_interrupted,
    exposure=Exposure(
        "Write a file byte-exact (mode: executable true/false/null keeps it)",
        WriteFileRequest,
        WriteFileResult,
        "Write a file with exactly this content (parent folders are created). `executable`: true "
        "makes it 100755, false 100644, null keeps an existing file's mode. The answer says "
        "`ignored: true` when .gitignore excludes the path (it will not be committed).",
    ),
)
REPLACE_IN_FILE: Tool[ReplaceInFileRequest, ReplaceInFileResult] = Tool(
    "replace_in_file",
    files.replace_call,
    files.replace_answer,
    files.replace_interrupted,
    exposure=Exposure(
        "Exact, counted string replacement",
        ReplaceInFileRequest,
        ReplaceInFileResult,
        "Replace exact text in an existing file: `old` must match byte for byte and occur exactly "
        "`expected_count` times (default 1), else nothing changes and the error lists where it "
        "occurs or the closest lines. Returns the changed region with line numbers.",
    ),
)
DELETE_FILE: Tool[DeleteFileRequest, DeleteFileResult] = Tool(
    "delete_file",
    files.delete_call,
    files.delete_answer,
    files.delete_interrupted,
    exposure=Exposure(
        "Delete a file or a symlink (never a folder, never a link's target)",
        DeleteFileRequest,
        DeleteFileResult,
        "Delete a file (or a symbolic link itself) from the repository.",
    ),
)
MOVE_FILE: Tool[MoveFileRequest, MoveFileResult] = Tool(
    "move_file",
    files.move_call,
    files.move_answer,
    files.move_interrupted,
    exposure=Exposure(
        "Move or rename a file, keeping its bytes and mode",
        MoveFileRequest,
        MoveFileResult,
        "Move or rename a file (bytes and mode kept; parent folders of `to` are created). An "
        "existing `to` is refused unless `overwrite` is true.",
    ),
)
LIST_DIRECTORY: Tool[ListDirectoryRequest, ListDirectoryResult] = Tool(
    "list_directory",
    listing.list_call,
    listing.list_answer,
    listing.list_interrupted,
    idempotent=True,
    exposure=Exposure(
        "List a folder",
        ListDirectoryRequest,
        ListDirectoryResult,
        "List a folder of the repository (files with sizes, folders, links), `depth` levels deep.",
    ),
)
SEARCH: Tool[SearchRequest, SearchResult] = Tool(
    "search",
    search.search_call,
    search.search_answer,
    search.search_interrupted,
    idempotent=True,
    exposure=Exposure(
        "Search every tracked file with ripgrep",
        SearchRequest,
        SearchResult,
        "Search the repository's files (every tracked file, whatever .gitignore says) for a "
        "regular expression or a fixed string. Each match gives path, line, column and the line's "
        "text (a window around the match on long lines).",
    ),
)

# --- the service's own calls (not routes): the diff, and blobs for a commit ------------------------

DIFF: Tool[diff.DiffQuery, diff.Changes] = Tool(
    "diff", diff.diff_call, diff.parse_changes, diff.changes_interrupted, idempotent=True, action_name="diff"
)
READ_BLOBS: Tool[diff.BlobsQuery, dict[str, bytes]] = Tool(
    "read_blobs",
    diff.blobs_call,
    diff.parse_blobs,
    diff.blobs_interrupted,
    idempotent=True,
    action_name="commit.read_blobs",
)

# --- composites: routes made of the tools above ---------------------------------------------------


EDITOR_STEPS = editor.Steps(read=READ_FILE, listing=LIST_DIRECTORY, write=WRITE_FILE, replace=REPLACE_IN_FILE)


async def _edit(req: EditorRequest, run: Runner) -> EditorResult:
    return await editor.run(req, run, EDITOR_STEPS)


STR_REPLACE_BASED_EDIT_TOOL: Composite[EditorRequest, EditorResult] = Composite(
    "str_replace_based_edit_tool",
    _edit,
    Exposure(
        "Claude's text editor tool (text_editor_20250728), its input verbatim",
        EditorRequest,
        EditorResult,
        "Anthropic's text editor tool: `view` a file (numbered lines, `view_range`) or a folder (two "
        "levels, hidden items left out), `create` a file (overwrites), `str_replace` exact text that "
        "occurs exactly once, `insert` text after line `insert_line` (0: at the start). The answer "
        "is the text for the tool_result and `is_error`: the model's mistakes (no match, two "
        "matches, missing file, a path outside /workspace) are results with `is_error: true`. "
        "Each step is one call of read_file, list_directory, write_file or replace_in_file, audited "
        "as that tool with `via: str_replace_based_edit_tool`.",
        agent_tool=False,  # Claude knows it by its type; other agents have the plain tools
    ),
)

TOOLS: tuple[Tool[Any, Any], ...] = (
    READ_FILE,
    WRITE_FILE,
    REPLACE_IN_FILE,
    DELETE_FILE,
    MOVE_FILE,
    LIST_DIRECTORY,
    SEARCH,
    DIFF,
    READ_BLOBS,
)
COMPOSITES: tuple[Composite[Any, Any], ...] = (STR_REPLACE_BASED_EDIT_TOOL,)
EXPOSED: tuple[AnyTool, ...] = (*(t for t in TOOLS if t.exposure is not None), *COMPOSITES)


def route_path(tool: AnyTool) -> str:
    return f"/v1/jobs/{{id}}/tools/{tool.name}"


def agent_tools() -> list[dict[str, Any]]:
    """The agents' tool list (Anthropic's `name`/`description`/`input_schema` shape), derived from
    the request models: what the bot (and any agent) offers its model."""
    out: list[dict[str, Any]] = []
    for t in EXPOSED:
        assert t.exposure is not None
        if not t.exposure.agent_tool:
            continue
        schema = t.exposure.request.model_json_schema(by_alias=True)
        props: dict[str, Any] = schema.get("properties", {})
        keep = t.exposure.agent_fields or tuple(props)
        defs = schema.get("$defs")
        input_schema: dict[str, Any] = {
            "type": "object",
            "properties": {k: _plain(props[k]) for k in keep if k in props},
            "required": [k for k in schema.get("required", []) if k in keep],
            "additionalProperties": False,
        }
        if defs:
            input_schema["$defs"] = defs
        out.append({"name": t.name, "description": t.exposure.description, "input_schema": input_schema})
    return out


def _plain(prop: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in prop.items() if k != "title"}
