"""Test runners' machine output → test cases. One parser per format, never scraped from prose.

- `junit_xml`: the report a runner wrote (pytest `--junitxml`, family xunit1 for file and line);
  parsed with defusedxml, so a DTD, an entity or an external reference in it is refused.
- `go_json`: `go test -json` events (test2json).
- `tap`: TAP 13 as node 18's test runner prints it (node 18 has no junit reporter), nested
  subtests joined with " > ".
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

Outcome = Literal["passed", "failed", "error", "skipped"]
MESSAGE_CAP = 2000
WORKDIRS = ("/tmp/ws/", "/tmp/base/")


@dataclass
class Case:
    id: str
    outcome: Outcome
    message: str = ""
    path: str | None = None
    line: int | None = None

    @property
    def failing(self) -> bool:
        return self.outcome in ("failed", "error")


@dataclass
class Report:
    cases: list[Case] = field(default_factory=list)
    error: str | None = None  # the machine output could not be read

    def counts(self) -> dict[str, int]:
        out = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
        for c in self.cases:
            out["errors" if c.outcome == "error" else c.outcome] += 1
        return out


def _cap(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MESSAGE_CAP else text[:MESSAGE_CAP] + " …"


def _relative(path: str) -> str:
    for prefix in WORKDIRS:
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


# --- JUnit XML ------------------------------------------------------------------------------------


def _pytest_id(file: str | None, classname: str, name: str) -> str:
    """A pytest node id (tests/test_a.py::TestK::test_x) from xunit1 attributes."""
    if not file:
        return f"{classname}::{name}" if classname else name
    module = file[:-3].replace("/", ".") if file.endswith(".py") else file
    classes = classname[len(module) + 1 :] if classname.startswith(module + ".") else ""
    return "::".join([file, *(c for c in classes.split(".") if c), name])


def parse_junit(stdout: str, stderr: str) -> Report:
    text = stdout.strip()
    if not text:
        return Report(error="the runner wrote no JUnit report")
    try:
        root = fromstring(text, forbid_dtd=True)
    except DefusedXmlException as e:
        return Report(
            error=f"the JUnit report was refused ({type(e).__name__}: DTDs and entities are not read)"
        )
    except Exception as e:  # ParseError and friends: an unreadable report gives no verdict
        return Report(error=f"the JUnit report is not valid XML: {e}")
    report = Report()
    for case in root.iter("testcase"):
        file = case.get("file")
        file = _relative(file) if file else None
        line_attr = case.get("line")
        line = int(line_attr) + 1 if line_attr and line_attr.isdigit() else None  # pytest: 0-based
        outcome: Outcome = "passed"
        message = ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = (
                    "failed" if child.tag == "failure" else "error" if child.tag == "error" else "skipped"
                )
                message = child.get("message") or ""
                body = (child.text or "").strip()
                if outcome != "skipped" and body:
                    message = f"{message}\n{body}" if message and not body.startswith(message) else body
                break
        report.cases.append(
            Case(
                id=_pytest_id(file, case.get("classname") or "", case.get("name") or "?"),
                outcome=outcome,
                message=_cap(message),
                path=file,
                line=line,
            )
        )
    return report


# --- go test -json --------------------------------------------------------------------------------

_GO_LOCATION = re.compile(r"^\s+(\S+?\.go):(\d+):")


def parse_go_json(stdout: str, stderr: str) -> Report:
    outputs: dict[tuple[str, str], list[str]] = {}
    results: dict[tuple[str, str], str] = {}
    package_failed: dict[str, bool] = {}
    seen_events = False
    for raw in stdout.splitlines():
        raw = raw.strip()
        if not raw.startswith("{"):
            continue
        try:
            ev = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(ev, dict):
            continue
        seen_events = True
        pkg = str(ev.get("Package") or ev.get("ImportPath") or "")
        test = ev.get("Test")
        action = ev.get("Action")
        key = (pkg, str(test or ""))
        if action in ("output", "build-output"):
            outputs.setdefault(key, []).append(str(ev.get("Output") or ""))
        elif action in ("pass", "fail", "skip") and test:
            results[key] = str(action)
        elif action == "fail" and not test:
            package_failed[pkg] = True
    if not seen_events:
        return Report(
            error="go test printed no -json events" + (f": {_cap(stderr)}" if stderr.strip() else "")
        )
    report = Report()
    for (pkg, test), action in results.items():  # a parent of subtests is a case too, as go reports it
        lines = [ln for ln in outputs.get((pkg, test), []) if not ln.lstrip().startswith(("=== ", "--- "))]
        message = "".join(lines)
        path: str | None = None
        line: int | None = None
        for ln in lines:
            m = _GO_LOCATION.match(ln)
            if m:
                path, line = m.group(1), int(m.group(2))
                break
        outcome: Outcome = "passed" if action == "pass" else "skipped" if action == "skip" else "failed"
        report.cases.append(
            Case(f"{pkg}::{test}", outcome, _cap(message) if outcome == "failed" else "", path, line)
        )
    failing_pkgs = {c.id.split("::", 1)[0] for c in report.cases if c.failing}
    for pkg in sorted(p for p, failed in package_failed.items() if failed and p not in failing_pkgs):
        text = "".join(outputs.get((pkg, ""), [])) or "".join(outputs.get(("", ""), []))
        report.cases.append(Case(f"{pkg}::(package)", "error", _cap(text or stderr or "the package failed")))
    return report


# --- TAP (node:test) ------------------------------------------------------------------------------

_TAP_POINT = re.compile(r"^(\s*)(not ok|ok)\s+\d+(?:\s+-\s+(.*?))?\s*(?:#\s*(SKIP|TODO)\b.*)?$", re.I)
_TAP_SUBTEST = re.compile(r"^(\s*)# Subtest: (.*)$")
_TAP_LOCATION = re.compile(r"^\s*location:\s*'?(.*?):(\d+)(?::\d+)?'?\s*$")
_TAP_ERROR = re.compile(r"^(\s*)error:\s*(.*)$")


def parse_tap(stdout: str, stderr: str) -> Report:
    lines = stdout.splitlines()
    points: list[tuple[int, Case]] = []  # (indent, case), in output order
    stack: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        text = lines[i]
        sub = _TAP_SUBTEST.match(text)
        if sub:
            indent = len(sub.group(1))
            stack = [s for s in stack if s[0] < indent]
            stack.append((indent, sub.group(2).strip()))
            i += 1
            continue
        point = _TAP_POINT.match(text)
        if not point:
            i += 1
            continue
        indent = len(point.group(1))
        name = (point.group(3) or "").strip() or "(unnamed)"
        parents = [n for ind, n in stack if ind < indent]
        stack = [s for s in stack if s[0] < indent]
        directive = (point.group(4) or "").upper()
        outcome: Outcome = (
            "skipped" if directive else "passed" if point.group(2).lower() == "ok" else "failed"
        )
        case = Case(" > ".join([*parents, name]), outcome)
        i += 1
        # The YAML block of this point: `---` … `...`, indented under it.
        if i < len(lines) and lines[i].strip() == "---":
            i += 1
            while i < len(lines) and lines[i].strip() != "...":
                loc = _TAP_LOCATION.match(lines[i])
                err = _TAP_ERROR.match(lines[i])
                if loc:
                    case.path, case.line = _relative(loc.group(1)), int(loc.group(2))
                elif err and outcome == "failed":
                    value = err.group(2).strip()
                    if value in ("|-", "|", ">-", ">"):
                        body: list[str] = []
                        base = len(err.group(1))
                        while i + 1 < len(lines) and (
                            not lines[i + 1].strip() or len(lines[i + 1]) - len(lines[i + 1].lstrip()) > base
                        ):
                            i += 1
                            body.append(lines[i].strip())
                        value = "\n".join(body)
                    case.message = _cap(value.strip("'\""))
                i += 1
            i += 1
        points.append((indent, case))
    report = Report()
    for n, (indent, case) in enumerate(points):
        # A point whose previous point is deeper is a suite (its children came first): not a case.
        if n > 0 and points[n - 1][0] > indent:
            continue
        report.cases.append(case)
    return report


PARSERS: dict[str, Callable[[str, str], Report]] = {
    "junit_xml": parse_junit,
    "go_json": parse_go_json,
    "tap": parse_tap,
}
