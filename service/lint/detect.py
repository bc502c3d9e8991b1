"""Which linters run: the repository's own config first, the language's default otherwise.

Every pick carries its rule in words ("config: ruff.toml", "default for python: the repository
configures no python linter", "requested"), so a result says why each linter ran.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from service.errors import InvalidRequest
from service.settings import ImagesConfig, LinterSpec


@dataclass(frozen=True)
class Pick:
    language: str
    name: str
    spec: LinterSpec
    rule: str
    files: list[str]


@dataclass(frozen=True)
class Skip:
    language: str
    name: str
    reason: str


def matches(path: str, patterns: Iterable[str]) -> bool:
    base = posixpath.basename(path)
    return any(fnmatch.fnmatchcase(path, p) or fnmatch.fnmatchcase(base, p) for p in patterns)


def rule_files(cfg: ImagesConfig) -> set[str]:
    """Config files whose text is needed to evaluate `FILE:[section]` rules."""
    return {
        rule.split(":", 1)[0]
        for lang in cfg.languages.values()
        for linter in lang.linters.values()
        for rule in linter.enabled_by
        if ":" in rule
    }


def _has_section(text: str, section: str) -> bool:
    head = section.rstrip("]")  # "[tool.ruff]" also matches "[tool.ruff.lint]"
    return any(line.strip() == section or line.strip().startswith(head + ".") for line in text.splitlines())


def enabling_rule(spec: LinterSpec, root_files: set[str], texts: Mapping[str, str]) -> str | None:
    for rule in spec.enabled_by:
        name, _, section = rule.partition(":")
        found = sorted(f for f in root_files if fnmatch.fnmatchcase(f, name))
        if not found:
            continue
        if not section:
            return f"config: {found[0]}"
        for f in found:
            if _has_section(texts.get(f, ""), section):
                return f"config: {f} {section}"
    return None


def select(
    cfg: ImagesConfig,
    *,
    root_files: set[str],
    texts: Mapping[str, str],
    targets: list[str],
    requested: list[str] | None,
) -> tuple[list[Pick], list[Skip]]:
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
        chosen: list[tuple[str, LinterSpec, str]] = []
        if requested is not None:
            chosen = [(n, s, "requested") for n, s in lang.linters.items() if n in requested]
        else:
            for n, s in lang.linters.items():
                rule = enabling_rule(s, root_files, texts)
                if rule:
                    chosen.append((n, s, rule))
            if not chosen:
                chosen = [
                    (n, s, f"default for {lang_name}: the repository configures no {lang_name} linter")
                    for n, s in lang.linters.items()
                    if s.default
                ]
        for name, spec, rule in chosen:
            files = [t for t in targets if matches(t, spec.files)]
            if files:
                picks.append(Pick(lang_name, name, spec, rule, files))
            elif requested is not None or not rule.startswith("default"):
                skips.append(Skip(lang_name, name, f"no file to check matches {', '.join(spec.files)}"))
    return picks, skips
