"""One parser per linter output format → diagnostics with repo-relative paths.

Every parser is total: output it cannot read yields no diagnostics (the raw output is kept with
the result, and a linter that failed without diagnostics is reported as an error by the runner).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ROOTS = ("/workspace/", "/tmp/base/")


@dataclass(frozen=True)
class Diagnostic:
    path: str
    line: int
    column: int
    code: str
    message: str
    severity: str

    def key(self) -> tuple[str, str, str]:
        """What makes a diagnostic the same one at base_sha: path, code, message (not the line)."""
        return (self.path, self.code, self.message)


def rel_path(path: str) -> str:
    for root in ROOTS:
        if path.startswith(root):
            path = path[len(root) :]
    while path.startswith("./"):
        path = path[2:]
    return path


def _json(text: str) -> Any:
    text = text.strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        # Some linters print a warning line before the JSON document: start at the first bracket.
        starts = [i for i in (text.find("["), text.find("{")) if i >= 0]
        if not starts:
            return None
        try:
            return json.loads(text[min(starts) :])
        except ValueError:
            return None


def ruff_json(stdout: str, stderr: str) -> list[Diagnostic]:
    data = _json(stdout)
    out = []
    for item in data if isinstance(data, list) else []:
        loc = item.get("location") or {}
        out.append(
            Diagnostic(
                path=rel_path(str(item.get("filename", ""))),
                line=int(loc.get("row") or 1),
                column=int(loc.get("column") or 1),
                code=str(item.get("code") or "syntax-error"),
                message=str(item.get("message", "")),
                severity="error",
            )
        )
    return out


_FLAKE8 = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+):(?P<col>\d+): (?P<code>[A-Z]+\d+) (?P<msg>.*)$")


def flake8(stdout: str, stderr: str) -> list[Diagnostic]:
    out = []
    for line in stdout.splitlines():
        m = _FLAKE8.match(line.strip())
        if m:
            code = m["code"]
            severity = "error" if code[0] in "EF" else "warning"
            out.append(
                Diagnostic(rel_path(m["path"]), int(m["line"]), int(m["col"]), code, m["msg"], severity)
            )
    return out


_PYLINT_SEVERITY = {"fatal": "error", "error": "error", "warning": "warning"}


def pylint_json(stdout: str, stderr: str) -> list[Diagnostic]:
    data = _json(stdout)
    messages = data.get("messages", []) if isinstance(data, dict) else data if isinstance(data, list) else []
    out = []
    for m in messages:
        code = m.get("messageId") or m.get("message-id") or m.get("symbol") or "pylint"
        symbol = m.get("symbol")
        out.append(
            Diagnostic(
                path=rel_path(str(m.get("path", ""))),
                line=int(m.get("line") or 1),
                column=int(m.get("column") or 0) + 1,  # pylint columns are 0-based
                code=str(code),
                message=f"{m.get('message', '')}" + (f" ({symbol})" if symbol and symbol != code else ""),
                severity=_PYLINT_SEVERITY.get(str(m.get("type")), "info"),
            )
        )
    return out


# path:line[:col[:end_line:end_col]]: error: message  [code]; or path: error: message (a file-level
# finding such as "Duplicate module named ..." — a diagnostic at line 1, never a failed run).
_MYPY = re.compile(
    r"^(?P<path>[^:\n]+):(?:(?P<line>\d+):(?:(?P<col>\d+):)?(?:\d+:\d+:)?)? (?P<sev>error|warning): "
    r"(?P<msg>.*?)(?:  \[(?P<code>[a-z0-9-]+)\])?$"
)


def mypy(stdout: str, stderr: str) -> list[Diagnostic]:
    out = []
    for line in stdout.splitlines():  # usage errors ("mypy: error: ...") go to stderr
        m = _MYPY.match(line.rstrip())
        if m:
            out.append(
                Diagnostic(
                    rel_path(m["path"]),
                    int(m["line"] or 1),
                    int(m["col"] or 1),
                    m["code"] or "mypy",
                    m["msg"],
                    m["sev"],
                )
            )
    return out


def _ignored_notice(m: dict[str, Any]) -> bool:
    """eslint's warning for a file passed explicitly that the repo's own ignores exclude."""
    return m.get("ruleId") is None and str(m.get("message", "")).startswith("File ignored")


def eslint_json(stdout: str, stderr: str) -> list[Diagnostic]:
    data = _json(stdout)
    out = []
    for f in data if isinstance(data, list) else []:
        path = rel_path(str(f.get("filePath", "")))
        for m in f.get("messages", []):
            if _ignored_notice(m):
                continue  # the repository ignores this file: not a finding
            out.append(
                Diagnostic(
                    path=path,
                    line=int(m.get("line") or 1),
                    column=int(m.get("column") or 1),
                    code=str(m.get("ruleId") or ("parse-error" if m.get("fatal") else "eslint")),
                    message=str(m.get("message", "")),
                    severity="error" if m.get("severity") == 2 else "warning",
                )
            )
    return out


_GO_VET = re.compile(r"^(?:vet: )?(?P<path>[^:\s]+\.go):(?P<line>\d+):(?:(?P<col>\d+):)? (?P<msg>.+)$")


# go's package loading failing (a module it cannot have without the repo's dependencies): vet
# never ran, so these are not findings; the run is an error.
_GO_LOAD_FAILURE = re.compile(
    r"^(?:no required module provides package|missing go\.sum entry|cannot find module providing package|"
    r"package .* is not in std|could not import |go: |updates to go\.mod needed)"
)


def go_vet(stdout: str, stderr: str) -> list[Diagnostic]:
    out = []
    for line in (stderr + "\n" + stdout).splitlines():
        m = _GO_VET.match(line.strip())
        if m and not _GO_LOAD_FAILURE.match(m["msg"]):
            out.append(
                Diagnostic(rel_path(m["path"]), int(m["line"]), int(m["col"] or 1), "vet", m["msg"], "error")
            )
    return out


def gofmt(stdout: str, stderr: str) -> list[Diagnostic]:
    return [
        Diagnostic(rel_path(p.strip()), 1, 1, "gofmt", "file is not gofmt-formatted", "warning")
        for p in stdout.splitlines()
        if p.strip().endswith(".go")
    ]


_SHELLCHECK_SEVERITY = {"error": "error", "warning": "warning", "info": "info", "style": "info"}


def shellcheck_json(stdout: str, stderr: str) -> list[Diagnostic]:
    data = _json(stdout)
    comments = data.get("comments", []) if isinstance(data, dict) else data if isinstance(data, list) else []
    return [
        Diagnostic(
            path=rel_path(str(c.get("file", ""))),
            line=int(c.get("line") or 1),
            column=int(c.get("column") or 1),
            code=f"SC{c.get('code')}",
            message=str(c.get("message", "")),
            severity=_SHELLCHECK_SEVERITY.get(str(c.get("level")), "warning"),
        )
        for c in comments
    ]


PARSERS: dict[str, Callable[[str, str], list[Diagnostic]]] = {
    "ruff_json": ruff_json,
    "flake8": flake8,
    "pylint_json": pylint_json,
    "mypy": mypy,
    "eslint_json": eslint_json,
    "go_vet": go_vet,
    "gofmt": gofmt,
    "shellcheck_json": shellcheck_json,
}
