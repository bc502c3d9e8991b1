"""The starting file set: names and paths the report mentions, found in the repository before the
model's first turn, so its first round starts at the likely place instead of a blind listing."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

CODE_EXTENSIONS = {
    "py", "pyi", "js", "jsx", "mjs", "cjs", "ts", "tsx", "go", "rs", "rb", "java", "kt", "c", "h", "cc",
    "cpp", "hpp", "cs", "php", "sh", "bash", "swift", "scala", "sql", "toml", "yaml", "yml", "json", "cfg",
    "ini", "md", "rst", "txt", "html", "css", "vue",
}  # fmt: skip
STOP_WORDS = {
    "the", "and", "for", "with", "this", "that", "when", "then", "from", "into", "should", "would", "could",
    "error", "errors", "returns", "return", "value", "values", "expected", "actual", "instead", "because",
    "steps", "reproduce", "bug", "fix", "issue", "python", "traceback", "most", "recent", "call", "last",
    "line", "file", "none", "true", "false", "null", "self", "print",
}  # fmt: skip

_BACKTICK = re.compile(r"`([^`\n]{2,120})`")
_PATH = re.compile(r"(?<![\w@:/.-])((?:[\w.-]+/)*[\w-][\w.-]*\.([A-Za-z0-9]{1,8}))(?::(\d+))?(?![\w/])")
_TRACE_PATH = re.compile(r'File "([^"]+)", line (\d+)')
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(\()?")


def paths_in(text: str) -> list[str]:
    """Repository-looking paths the text mentions (in order, without duplicates)."""
    found: list[str] = []
    for m in _TRACE_PATH.finditer(text):
        found.append(m.group(1))
    for m in _PATH.finditer(text):
        path, ext = m.group(1), m.group(2).lower()
        if ext in CODE_EXTENSIONS and (("/" in path) or ext not in ("md", "txt", "json")):
            found.append(path)
    out: list[str] = []
    for p in found:
        p = p.strip().lstrip("./") if p.startswith("./") else p.strip()
        if p and p not in out and not p.startswith(("http:", "https:")):
            out.append(p)
    return out


def _interesting(name: str, called: bool) -> bool:
    bare = name.split(".")[-1]
    if len(bare) < 3 or bare.lower() in STOP_WORDS or keyword.iskeyword(bare):
        return False
    return (
        called
        or "_" in bare.strip("_")
        or "." in name
        or bool(re.search(r"[a-z][A-Z]", bare))
        or bool(re.match(r"[A-Z][a-z]+[A-Z]", bare))
    )


def identifiers(text: str, limit: int = 8) -> list[str]:
    """Code names the report mentions, most telling first: backticked names, then calls, snake_case,
    camelCase and dotted names. Dotted names give their last part (what a search finds)."""
    seen: list[str] = []

    def add(name: str) -> None:
        bare = name.split(".")[-1].strip("()")
        if bare and bare not in seen and bare.lower() not in STOP_WORDS and not keyword.iskeyword(bare):
            seen.append(bare)

    paths = set(paths_in(text))
    for m in _BACKTICK.finditer(text):
        span = m.group(1).strip()
        if span in paths:
            continue
        for n in _NAME.finditer(span):
            if len(n.group(0).rstrip("(").split(".")[-1]) >= 3 and n.group(0).rstrip("(") not in paths:
                add(n.group(0).rstrip("("))
                break
    for m in _NAME.finditer(_BACKTICK.sub(" ", text)):
        name = m.group(0).rstrip("(")
        if any(name in p for p in paths):
            continue
        if _interesting(name, called=m.group(1) is not None):
            add(name)
    return seen[:limit]


@dataclass
class Candidates:
    """Files ranked by how much of the report points at them."""

    mentioned: list[str] = field(default_factory=list)
    hits: dict[str, list[str]] = field(default_factory=dict)  # path -> "ident @ line: text"
    idents_per_file: dict[str, set[str]] = field(default_factory=dict)

    def add_hit(self, ident: str, path: str, line: int, text: str) -> None:
        self.hits.setdefault(path, []).append(f"{path}:{line}: {text.strip()[:160]}")
        self.idents_per_file.setdefault(path, set()).add(ident)

    def ranked(self) -> list[str]:
        def is_test(p: str) -> bool:
            name = p.rsplit("/", 1)[-1]
            return name.startswith("test") or name.endswith(("_test.py", ".test.js", ".test.ts", "_test.go"))

        rest = sorted(
            (p for p in self.hits if p not in self.mentioned),
            key=lambda p: (-len(self.idents_per_file.get(p, ())), is_test(p), -len(self.hits[p]), p),
        )
        return [*self.mentioned, *rest]
