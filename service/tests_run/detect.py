"""Which command runs a repository's tests, and why (`rule`).

The repository's own rule first (pytest with its config or a tests/ folder, package.json's test
script, go.mod), else ops' per-language default from images.toml, else a request's `command`
when ops allow it for the language. A language without a `tests` table is skipped with a reason.
"""

from __future__ import annotations

import configparser
import json
import posixpath
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from service.errors import Forbidden, PathOutsideWorkspace
from service.settings import ImagesConfig, TestSpec

REPORT = "/tmp/.dockyard/report.xml"
PLACEHOLDER_REPORT = "{report}"
# The files whose content decides the rule, read from the workspace root.
RULE_FILES = ("pyproject.toml", "pytest.ini", "tox.ini", "setup.cfg", "package.json")
NPM_PLACEHOLDER = 'echo "Error: no test specified" && exit 1'
_SHELL_META = re.compile(r"[|&;<>()$`\\\"'*?\[\]#~=%]")


@dataclass(frozen=True)
class Selection:
    language: str
    spec: TestSpec
    image: str  # an [images] name
    command: list[str]  # argv; {report} already expanded
    rule: str
    parser: str
    narrowable: str  # how paths and re-runs narrow the run: pytest | go | node | none
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Skip:
    reason: str


def check_paths(paths: list[str]) -> list[str]:
    """Repo-relative paths (a pytest node id's file part included) or 400 path_outside_workspace."""
    out = []
    for p in paths:
        file, sep, rest = p.partition("::")
        norm = posixpath.normpath(file)
        parts = norm.split("/")
        if file.startswith(("/", "-")) or ".." in parts or ".git" in parts:
            raise PathOutsideWorkspace(f"path {p!r} is outside the workspace", {"path": p})
        out.append(norm + sep + rest)
    return out


def _pyproject_has_pytest(text: str) -> bool:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    tool = data.get("tool")
    return isinstance(tool, dict) and isinstance(tool.get("pytest"), dict)


def _ini_has(text: str, section: str) -> bool:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return False
    return parser.has_section(section)


def _python_rule(root_files: set[str], tree: list[str], texts: dict[str, str]) -> str | None:
    if "pytest.ini" in root_files:
        return "pytest.ini"
    if _pyproject_has_pytest(texts.get("pyproject.toml", "")):
        return "pyproject.toml:[tool.pytest.ini_options]"
    if _ini_has(texts.get("tox.ini", ""), "pytest"):
        return "tox.ini:[pytest]"
    if _ini_has(texts.get("setup.cfg", ""), "tool:pytest"):
        return "setup.cfg:[tool:pytest]"
    for path in tree:
        name = posixpath.basename(path)
        if fnmatchcase(name, "test_*.py") or fnmatchcase(name, "*_test.py"):
            top = path.split("/", 1)[0]
            if "/" not in path or top in ("tests", "test"):
                return f"{top}/ with test_*.py" if "/" in path else "test_*.py at the root"
    return None


def _node_script(texts: dict[str, str]) -> str | None:
    try:
        data = json.loads(texts.get("package.json", ""))
    except ValueError:
        return None
    scripts = data.get("scripts") if isinstance(data, dict) else None
    script = scripts.get("test") if isinstance(scripts, dict) else None
    if not isinstance(script, str) or not script.strip() or script.strip() == NPM_PLACEHOLDER:
        return None
    return script.strip()


def _expand(command: list[str]) -> list[str]:
    return [a.replace(PLACEHOLDER_REPORT, REPORT) for a in command]


def select(
    cfg: ImagesConfig,
    language: str,
    *,
    root_files: set[str],
    tree: list[str],
    texts: dict[str, str],
    command: list[str] | None,
) -> Selection | Skip:
    lang = cfg.languages.get(language)
    spec = lang.tests if lang is not None else None
    if lang is None or spec is None:
        return Skip(
            f"test runs are not configured for language {language!r} (no [languages.{language}.tests] "
            "in the ops file); nothing was run"
        )
    image = spec.image or lang.image
    parser = spec.parser
    if command is not None:
        if not spec.allow_custom_command:
            raise Forbidden(
                f"a custom test command is not allowed for {language!r}: ops have not set "
                f"languages.{language}.tests.allow_custom_command",
                {"language": language},
            )
        return Selection(
            language, spec, image, list(command), "request command", parser, "none", dict(spec.env)
        )
    default = _expand(spec.command)
    if language == "python":
        rule = _python_rule(root_files, tree, texts)
        return Selection(
            language,
            spec,
            image,
            default,
            rule or "ops default (images.toml)",
            parser,
            "pytest",
            dict(spec.env),
        )
    if language == "node":
        script = _node_script(texts)
        if script is None:
            return Selection(
                language, spec, image, default, "ops default (images.toml)", parser, "node", dict(spec.env)
            )
        words = shlex.split(script) if not _SHELL_META.search(script) else []
        if words[:2] == ["node", "--test"]:
            argv = [
                *words[:2],
                "--test-reporter=tap",
                *(w for w in words[2:] if not w.startswith("--test-reporter")),
            ]
            return Selection(
                language, spec, image, argv, "package.json scripts.test", "tap", "node", dict(spec.env)
            )
        # Any other script (jest, mocha, a shell line) runs through npm; TAP is read when it prints
        # TAP, else only its exit code gives the verdict.
        return Selection(
            language,
            spec,
            spec.script_image or image,
            ["npm", "test", "--silent"],
            "package.json scripts.test (npm test)",
            "tap",
            "none",
            dict(spec.env),
        )
    if language == "go":
        rule = "go.mod" if "go.mod" in root_files else "ops default (images.toml)"
        return Selection(language, spec, image, default, rule, parser, "go", dict(spec.env))
    return Selection(
        language, spec, image, default, "ops default (images.toml)", parser, "none", dict(spec.env)
    )


def narrow(sel: Selection, paths: list[str]) -> list[str]:
    """The selection's argv limited to `paths` (test files / node ids, or go packages)."""
    if not paths:
        return list(sel.command)
    if sel.narrowable == "go":
        pkgs = [p if p.startswith("./") or p == "." else "./" + p for p in paths]
        return [a for a in sel.command if a != "./..."] + pkgs
    if sel.narrowable in ("pytest", "node"):
        return [*sel.command, *paths]
    return list(sel.command)


def rerun_argv(sel: Selection, base_argv: list[str], ids: list[str]) -> list[str]:
    """The argv that re-runs only these failing cases, where the runner can say so."""
    if sel.narrowable == "pytest":
        files = [i for i in ids if "::" in i and i.split("::", 1)[0].endswith(".py")]
        if files:
            keep = [a for a in sel.command]
            return [*keep, *files]
    if sel.narrowable == "go":
        tests = sorted(
            {i.split("::", 1)[1].split("/", 1)[0] for i in ids if "::" in i and not i.endswith("(package)")}
        )
        if tests:
            return [*base_argv, "-run", "^(" + "|".join(re.escape(t) for t in tests) + ")$"]
    return base_argv
