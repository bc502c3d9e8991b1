"""Claude's text editor tool (`str_replace_based_edit_tool`, type `text_editor_20250728`) over the
job's own tools: each command is one or two calls of read_file, list_directory, write_file or
replace_in_file (so every step is audited as that tool, with the hashes it reports).

- `view` of a file: read_file, numbered (`cat -n`), `view_range` [start, end] (end -1: to the end);
  of a folder: list_directory two levels deep, hidden items (a name starting with `.`) left out.
- `create`: write_file — the file is created, or overwritten when it exists (Anthropic's docs list
  no "already exists" error; the answer says which happened).
- `str_replace`: replace_in_file with `expected_count` 1: no match, or more than one, changes nothing.
- `insert`: read_file, then replace_in_file of the WHOLE content read by the new content — a
  compare-and-swap, so a change made in between refuses the insert instead of being overwritten
  (an empty file has nothing to compare: it is written).

Paths: `/workspace/…` (where the job's repository is checked out) or repository-relative. Any other
absolute path (`/repo/app.py`, `/etc/passwd`) is outside the workspace and refused: it is never
guessed at. `.git`, `..` and links out of the tree are refused by the tools below, as everywhere.

The model's mistakes (a field its command needs left out included) and what a file refuses
are answers with `is_error: true` (the text says what to do); a job that is gone, not ready or
unreachable is an HTTP error, as for every tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from service.errors import EditMismatch, FileExists, FileNotFound, InvalidRequest, PayloadTooLarge
from service.models import (
    EditorRequest,
    EditorResult,
    ListDirectoryRequest,
    ListDirectoryResult,
    ReadFileRequest,
    ReadFileResult,
    ReplaceInFileRequest,
    ReplaceInFileResult,
    WriteFileRequest,
    WriteFileResult,
)

if TYPE_CHECKING:
    from service.tools.registry import Runner, Tool

WORKSPACE = "/workspace"  # where a job's repository is checked out (API.md, "Jobs")
LIST_DEPTH = 2
SNIPPET_CONTEXT = 4
# Refusals the model should see and can act on (a path, a file, an edit that did not match). A job
# that is gone or not ready, a sandbox or engine failure: HTTP errors, as for every other tool.
REFUSALS: tuple[type[Exception], ...] = (
    InvalidRequest,
    FileNotFound,
    EditMismatch,
    FileExists,
    PayloadTooLarge,
)

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Steps:
    """The tools the editor's commands are made of (the registry's own declarations)."""

    read: Tool[ReadFileRequest, ReadFileResult]
    listing: Tool[ListDirectoryRequest, ListDirectoryResult]
    write: Tool[WriteFileRequest, WriteFileResult]
    replace: Tool[ReplaceInFileRequest, ReplaceInFileResult]


class Refused(Exception):
    """A command the model must see fail (`is_error: true`) with this text."""


async def run(req: EditorRequest, run: Runner, steps: Steps) -> EditorResult:
    if missing := req.missing():
        needed = " and ".join(f"`{m}`" for m in missing)
        return EditorResult(content=f"Error: the `{req.command}` command needs {needed}.", is_error=True)
    try:
        rel = repo_path(req.path)
        if req.command == "view":
            text = await _view(req, rel, run, steps)
        elif req.command == "create":
            text = await _create(req, rel, run, steps)
        elif req.command == "str_replace":
            text = await _str_replace(req, rel, run, steps)
        else:
            text = await _insert(req, rel, run, steps)
    except Refused as e:
        return EditorResult(content=str(e), is_error=True)
    except REFUSALS as e:
        return EditorResult(content=f"Error: {getattr(e, 'message', str(e))}", is_error=True)
    return EditorResult(content=text, is_error=False)


def repo_path(path: str) -> str:
    """The repository-relative path the tools take for what the model named."""
    if path == WORKSPACE or path.startswith(WORKSPACE + "/"):
        return path[len(WORKSPACE) :].strip("/") or "."
    if path.startswith("/"):
        raise Refused(
            f"The path {path} is outside the repository, which is checked out at {WORKSPACE}: use "
            f"{WORKSPACE}/<path> or a path relative to it."
        )
    return path


def _request(model: type[M], shown: str, **fields: Any) -> M:
    """A tool's request, its path checked as every tool checks it (`.git`, NUL, long names)."""
    try:
        return model.model_validate(fields)
    except ValidationError as e:
        raise Refused(f"Invalid path {shown}: {e.errors()[0]['msg']}") from e


def _timed_out(shown: str, what: str) -> Refused:
    return Refused(f"{what} {shown} timed out in the sandbox; nothing was changed. Try again.")


# --- view --------------------------------------------------------------------------------------------


async def _view(req: EditorRequest, rel: str, run: Runner, steps: Steps) -> str:
    if rel != "." and not req.path.endswith("/"):
        try:
            return await _view_file(req, rel, run, steps)
        except InvalidRequest as e:
            if e.code != "not_a_file":
                raise
            not_a_file = e  # a folder, or something that is neither
        try:
            return await _view_dir(req, rel, run, steps)
        except InvalidRequest:
            raise not_a_file from None
    return await _view_dir(req, rel, run, steps)


async def _view_file(req: EditorRequest, rel: str, run: Runner, steps: Steps) -> str:
    shown = req.path
    start, end = 1, None
    if req.view_range is not None:
        first, last = req.view_range
        if first < 1:
            raise Refused(f"Invalid `view_range` {req.view_range}: its first element must be 1 or more.")
        if last != -1 and last < first:
            raise Refused(
                f"Invalid `view_range` {req.view_range}: its second element must be -1 (to the end) or "
                f"at least its first element."
            )
        start, end = first, (None if last == -1 else last)
    r = await run(
        steps.read, _request(ReadFileRequest, shown, path=rel, start_line=start, end_line=end, numbered=True)
    )
    if r.timed_out:
        raise _timed_out(shown, "Viewing")
    if r.total_lines == 0:
        return f"The file {shown} is empty."
    whole = start == 1 and r.end_line == r.total_lines and not r.truncated
    where = "" if whole else f" (lines {r.start_line}-{r.end_line} of {r.total_lines})"
    text = f"Here's the result of running `cat -n` on {shown}{where}:\n{r.content}"
    if not text.endswith("\n"):
        text += "\n"
    if r.truncated:
        text += (
            f"[cut at the service's read cap after line {r.end_line}: view the rest with "
            f"`view_range` [{r.end_line + 1}, -1]]\n"
        )
    return text


async def _view_dir(req: EditorRequest, rel: str, run: Runner, steps: Steps) -> str:
    shown = req.path.rstrip("/") or "/"
    if req.view_range is not None:
        raise Refused("The `view_range` parameter is not allowed when `path` points to a directory.")
    r = await run(steps.listing, _request(ListDirectoryRequest, shown, path=rel, depth=LIST_DEPTH))
    if r.timed_out:
        raise _timed_out(shown, "Listing")
    prefix = WORKSPACE + "/" if req.path.startswith("/") else ""
    under = "" if rel == "." else rel.rstrip("/") + "/"
    lines = []
    for e in r.entries:
        below = e.path[len(under) :] if e.path.startswith(under) else e.path
        if any(part.startswith(".") for part in below.split("/")):
            continue  # hidden, or inside a hidden folder
        lines.append(prefix + e.path + ("/" if e.type == "dir" else ""))
    head = (
        f"Here are the files and directories up to {LIST_DEPTH} levels deep in {shown}, excluding "
        "hidden items:\n"
    )
    body = "\n".join(lines) + "\n" if lines else "(no files)\n"
    tail = f"[the listing was cut at {len(r.entries)} entries]\n" if r.truncated else ""
    return head + body + tail


# --- create ------------------------------------------------------------------------------------------


async def _create(req: EditorRequest, rel: str, run: Runner, steps: Steps) -> str:
    shown = req.path
    assert req.file_text is not None  # the request model requires it for `create`
    r = await run(steps.write, _request(WriteFileRequest, shown, path=rel, content=req.file_text))
    if r.timed_out:
        raise _timed_out(shown, "Writing")
    text = (
        f"File created successfully at: {shown}"
        if r.created
        else f"File overwritten at: {shown} (it existed; its mode {r.mode} is kept)"
    )
    if r.ignored:
        text += (
            "\nNote: the repository's .gitignore excludes this path, so it will NOT be part of the diff "
            "or a commit."
        )
    return text


# --- str_replace -------------------------------------------------------------------------------------


async def _str_replace(req: EditorRequest, rel: str, run: Runner, steps: Steps) -> str:
    shown = req.path
    assert req.old_str is not None  # the request model requires it for `str_replace`
    if req.old_str == "":
        raise Refused("`old_str` must not be empty: copy the exact text to replace from the file.")
    call = _request(ReplaceInFileRequest, shown, path=rel, old=req.old_str, new=req.new_str or "")
    try:
        r = await run(steps.replace, call)
    except EditMismatch as e:
        found = int(e.details.get("found_count") or 0)
        if found == 0:
            closest = e.details.get("closest_lines") or []
            hint = f" The closest lines are {', '.join(map(str, closest))}." if closest else ""
            raise Refused(
                f"No replacement was performed: no match found for `old_str` in {shown}. It must match "
                f"exactly, whitespace and indentation included.{hint}"
            ) from e
        where = ", ".join(map(str, e.details.get("occurrence_lines") or []))
        raise Refused(
            f"No replacement was performed: found {found} matches for `old_str` in {shown} (lines "
            f"{where}). Please provide more context to make a unique match."
        ) from e
    if r.timed_out:
        raise _timed_out(shown, "Editing")
    return _edited(shown, r.snippet)


def _edited(shown: str, snippet: str) -> str:
    if snippet and not snippet.endswith("\n"):
        snippet += "\n"
    return (
        f"The file {shown} has been edited. Here's the result of running `cat -n` on a snippet of "
        f"{shown}:\n{snippet}Review the changes and make sure they are as expected. Edit the file "
        "again if necessary."
    )


# --- insert ------------------------------------------------------------------------------------------


def lines_of(text: str) -> list[str]:
    """The lines as the tools count them: split after each `\\n`, each keeping its ending."""
    parts = text.split("\n")
    out = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        out.append(parts[-1])
    return out


def inserted(content: str, after: int, text: str) -> tuple[str, int, int]:
    """`content` with `text` as whole lines after line `after`: (new content, first and last line
    of the insert). A missing line ending is added in the file's own style (`\r\n` or `\n`)."""
    lines = lines_of(content)
    eol = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    body = text if text.endswith("\n") else text + eol
    if after == len(lines) and lines and not lines[-1].endswith("\n"):
        lines[-1] += eol  # appending after a last line that had no ending
    new = "".join(lines[:after]) + body + "".join(lines[after:])
    return new, after + 1, after + len(lines_of(body))


def numbered(content: str, first: int, last: int) -> str:
    """Lines `first`..`last` of `content` as `cat -n` shows them."""
    lines = lines_of(content)
    shown = (lines[n - 1].removesuffix("\n").removesuffix("\r") for n in range(first, last + 1))
    return "".join(f"{n:6}\t{line}\n" for n, line in zip(range(first, last + 1), shown, strict=True))


async def _insert(req: EditorRequest, rel: str, run: Runner, steps: Steps) -> str:
    shown = req.path
    text = req.insert_text if req.insert_text is not None else req.new_str
    assert text is not None and req.insert_line is not None  # the request model requires both
    r = await run(steps.read, _request(ReadFileRequest, shown, path=rel))
    if r.timed_out:
        raise _timed_out(shown, "Reading")
    if r.truncated:
        raise Refused(
            f"{shown} is too large for `insert` ({r.size_bytes} bytes, over the service's read cap): "
            "use `str_replace` with a few lines of context instead."
        )
    if req.insert_line > r.total_lines:
        raise Refused(
            f"Invalid `insert_line` parameter: {req.insert_line}. It should be within the range of lines "
            f"of the file: [0, {r.total_lines}]."
        )
    new, first, last = inserted(r.content, req.insert_line, text)
    if r.content == "":
        w = await run(steps.write, _request(WriteFileRequest, shown, path=rel, content=new))
        timed_out = w.timed_out
    else:
        # The whole content read is the `old` text: it occurs once, or the file changed meanwhile.
        call = _request(ReplaceInFileRequest, shown, path=rel, old=r.content, new=new)
        try:
            timed_out = (await run(steps.replace, call)).timed_out
        except EditMismatch as e:
            raise Refused(
                f"{shown} changed while the insert was being made, so nothing was inserted: view it "
                "again and retry."
            ) from e
    if timed_out:
        raise _timed_out(shown, "Editing")
    total = len(lines_of(new))
    snippet = numbered(new, max(1, first - SNIPPET_CONTEXT), min(total, last + SNIPPET_CONTEXT))
    return _edited(shown, snippet)
