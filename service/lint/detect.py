"""Which linters run: the repository's own config first, the language's default otherwise.

Every language of the repository is looked at, whatever the job's language: each file goes to the
linters whose globs match it, an extensionless script to those whose `shebangs` name its
interpreter. Every pick carries its rule in words ("config: ruff.toml", "default for python: the
repository configures no python linter", "requested"), so a result says why each linter ran; a file
no linter checks is reported in `skipped` by its kind ("*.rb", "ruby scripts"), except data, docs
and assets (NOT_CODE), which nobody expects linted.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from service.errors import InvalidRequest
from service.settings import ImagesConfig, LinterSpec

# Kinds of files that are not code: never reported as "not linted".
NOT_CODE = frozenset(
    "md markdown rst txt adoc json jsonc json5 yaml yml toml ini cfg conf lock sum mod csv tsv xml html htm "
    "css scss less svg png jpg jpeg gif ico webp bmp pdf woff woff2 ttf otf eot map snap gz zip tar tgz "
    "bz2 xz jar whl pyc so dll exe bin dat db sqlite license editorconfig gitignore gitattributes "
    "dockerignore npmignore prettierrc prettierignore nvmrc env example sample tmpl template".split()
)


@dataclass(frozen=True)
class Pick:
    language: str
    name: str
    spec: LinterSpec
    rule: str
    files: list[str]
    scoped: bool = False  # the repo's config declares the linter's own file scope (mypy `files =`)


@dataclass(frozen=True)
class Skip:
    language: str
    name: str
    reason: str


def matches(path: str, patterns: Iterable[str]) -> bool:
    base = posixpath.basename(path)
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(base, p) for p in patterns)


def rule_files(cfg: ImagesConfig) -> set[str]:
    """Config files whose text is needed: `FILE:[section]` and `FILE:key` rules, scoped linters."""
    return {
        rule.split(":", 1)[0]
        for lang in cfg.languages.values()
        for linter in lang.linters.values()
        for rule in linter.enabled_by
        if ":" in rule or linter.scope_keys
    }


def _in_section(line: str, section: str) -> bool:
    head = section.rstrip("]")  # "[tool.ruff]" also matches "[tool.ruff.lint]"
    return line == section or line.startswith(head + ".")


def _has_section(text: str, section: str) -> bool:
    return any(_in_section(line.strip(), section) for line in text.splitlines())


def _section_lines(text: str, section: str | None) -> list[str]:
    """The lines of one [section] (and its subsections); the whole text when section is None."""
    if section is None:
        return text.splitlines()
    out, inside = [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            inside = _in_section(stripped, section)
        elif inside:
            out.append(line)
    return out


def _has_json_key(text: str, path: str) -> bool:
    try:
        node = json.loads(text)
    except ValueError:
        return False
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


@dataclass(frozen=True)
class Enabled:
    file: str
    section: str | None  # "[tool.mypy]", a JSON key path, or None

    @property
    def rule(self) -> str:
        return f"config: {self.file}" + (f" {self.section}" if self.section else "")


def enabled(spec: LinterSpec, root_files: set[str], texts: Mapping[str, str]) -> Enabled | None:
    for rule in spec.enabled_by:
        name, _, section = rule.partition(":")
        found = sorted(f for f in root_files if fnmatch.fnmatchcase(f, name))
        for f in found:
            if not section:
                return Enabled(f, None)
            text = texts.get(f, "")
            if section.startswith("[") and _has_section(text, section):
                return Enabled(f, section)
            if not section.startswith("[") and _has_json_key(text, section):
                return Enabled(f, section)
    return None


def enabling_rule(spec: LinterSpec, root_files: set[str], texts: Mapping[str, str]) -> str | None:
    hit = enabled(spec, root_files, texts)
    return hit.rule if hit else None


def declares_scope(spec: LinterSpec, hit: Enabled | None, texts: Mapping[str, str]) -> bool:
    """The enabling config sets one of the linter's scope_keys (mypy's `files = ...`)."""
    if not spec.scope_keys or hit is None:
        return False
    section = hit.section if hit.section and hit.section.startswith("[") else None
    if section is None and hit.file.endswith((".ini", ".cfg")):
        section = next((s for s in ("[mypy]",) if _has_section(texts.get(hit.file, ""), s)), None)
    keys = "|".join(re.escape(k) for k in spec.scope_keys)
    pattern = re.compile(rf"^\s*(?:{keys})\s*[=:]")
    return any(pattern.match(line) for line in _section_lines(texts.get(hit.file, ""), section))


def interpreter(first_line: str) -> str | None:
    """`#!/usr/bin/env -S bash -e` → "bash"; `#!/bin/sh` → "sh"; python3.11 → "python"."""
    if not first_line.startswith("#!"):
        return None
    words = first_line[2:].split()
    if words and posixpath.basename(words[0]) == "env":
        words = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
    return normal_interpreter(posixpath.basename(words[0])) if words else None


def normal_interpreter(name: str) -> str:
    return re.sub(r"[0-9.]+$", "", name) or name


def checks(spec: LinterSpec, path: str, shebangs: Mapping[str, str]) -> bool:
    if matches(path, spec.files):
        return True
    found = shebangs.get(path)
    return found is not None and found in {normal_interpreter(s) for s in spec.shebangs}


def kind(path: str, shebangs: Mapping[str, str]) -> str | None:
    """How a file no linter checks is reported ("*.rb", "ruby scripts"); None: not code."""
    base = posixpath.basename(path)
    if "." not in base.lstrip("."):
        found = shebangs.get(path)
        return f"{found} scripts" if found else None
    ext = base.rsplit(".", 1)[1].lower()
    return None if ext in NOT_CODE else f"*.{ext}"


def select(
    cfg: ImagesConfig,
    *,
    root_files: set[str],
    texts: Mapping[str, str],
    targets: list[str],
    requested: list[str] | None,
    shebangs: Mapping[str, str] | None = None,
) -> tuple[list[Pick], list[Skip]]:
    """`shebangs`: extensionless target → its normalised interpreter (from its first line)."""
    shebangs = shebangs or {}
    known = {name for lang in cfg.languages.values() for name in lang.linters}
    if requested is not None:
        unknown = sorted(set(requested) - known)
        if unknown:
            raise InvalidRequest(
                f"unknown linter(s): {', '.join(unknown)}; configured: {', '.join(sorted(known)) or 'none'}",
                {"unknown": unknown, "linters": sorted(known)},
            )
    picks: list[Pick] = []
    skips: list[Skip] = []
    for lang_name, lang in cfg.languages.items():
        chosen: list[tuple[str, LinterSpec, str, Enabled | None]] = []
        if requested is not None:
            for n, s in lang.linters.items():
                if n in requested:
                    chosen.append((n, s, "requested", enabled(s, root_files, texts)))
        else:
            for n, s in lang.linters.items():
                hit = enabled(s, root_files, texts)
                if hit:
                    chosen.append((n, s, hit.rule, hit))
            if not chosen:
                chosen = [
                    (n, s, f"default for {lang_name}: the repository configures no {lang_name} linter", None)
                    for n, s in lang.linters.items()
                    if s.default
                ]
        for name, spec, rule, hit in chosen:
            files = [t for t in targets if checks(spec, t, shebangs)]
            if files:
                picks.append(Pick(lang_name, name, spec, rule, files, declares_scope(spec, hit, texts)))
            elif requested is not None or not rule.startswith("default"):
                skips.append(Skip(lang_name, name, f"no file to check matches {', '.join(spec.files)}"))
    if requested is None:
        covered = {f for p in picks for f in p.files}
        kinds = Counter(k for t in targets if t not in covered and (k := kind(t, shebangs)) is not None)
        for what, count in sorted(kinds.items()):
            plural = "s" if count != 1 else ""
            skips.append(Skip("none", what, f"no linter configured for {what} ({count} file{plural})"))
    return picks, skips
