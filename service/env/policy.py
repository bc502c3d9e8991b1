"""What a repository may NOT decide about its own environment, and the inputs that are left.

Every redirection a repository controls is refused or ignored, and recorded (a `Refusal`):

- python: `--index-url` / `-i` / `--extra-index-url` / `--find-links` / `-f` / `--trusted-host` /
  `--no-index` lines (the configured index is used), `-e` editables, VCS (`git+…`) and direct-URL
  (`name @ https://…`) requirements, local paths, `--no-binary` (sdists are never built: wheels
  only), a lock's git/url/path sources and a custom index named in poetry.lock;
- node: a repo `.npmrc` (never copied), `file:` / `link:` / `workspace:` / git / GitHub / http
  specs in package.json (removed, with their lockfile entries), lockfile `resolved` URLs outside
  the configured registry (the URL is dropped: npm fetches name@version from the configured
  registry and still checks the lock's integrity hash), workspace links;
- go: `replace` directives pointing at local paths (removed).

Pure functions over bytes: the service never executes or imports anything from the repository.
"""

from __future__ import annotations

import json
import posixpath
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Literal

from service.env.manifests import REQUIREMENTS_NAME, Manifests

RefusalKind = Literal[
    "index_redirect",
    "editable",
    "vcs",
    "direct_url",
    "local_path",
    "option",
    "sdist_only",
    "npmrc",
    "registry_redirect",
    "local_replace",
]

DEV_GROUPS = frozenset(
    {
        "dev",
        "develop",
        "development",
        "test",
        "tests",
        "testing",
        "lint",
        "linting",
        "linters",
        "typing",
        "types",
        "type",
        "mypy",
        "check",
        "checks",
        "style",
        "qa",
        "ci",
        "tox",
    }
)
_INDEX_OPTS = frozenset(
    {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "--trusted-host", "--no-index"}
)
_NAME = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[^\]]*\])?\s*(.*)$", re.S)
_VCS = re.compile(r"^(git|hg|svn|bzr)\+", re.I)
_ARCHIVE = re.compile(r"\.(whl|tar\.gz|tgz|zip|tar\.bz2|tar)$", re.I)


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    file: str
    detail: str


@dataclass
class Plan:
    """The sanitized inputs of a fetch box (names inside its input folder) and what was refused."""

    files: dict[str, bytes]
    refused: list[Refusal] = field(default_factory=list)
    lock: bool = False  # python: exact pins from a lock, fetched with --no-deps
    source: str = ""  # what the inputs came from, e.g. "uv.lock" or "requirements.txt, pyproject.toml"
    empty: bool = False  # nothing left to fetch


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# --- python ------------------------------------------------------------------------------------


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    buf = ""
    for raw in text.splitlines():
        if raw.endswith("\\"):
            buf += raw[:-1]
            continue
        line = buf + raw
        buf = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            out.append(line)
    if buf.strip():
        out.append(buf.strip())
    return out


def check_requirement(spec: str, file: str, refused: list[Refusal]) -> str | None:
    """A requirement string kept as is, or None (refused and recorded)."""
    text = spec.strip()
    head = text.split(";", 1)[0].strip()
    if _VCS.match(head) or re.search(r"@\s*(git|hg|svn|bzr)\+", head, re.I):
        refused.append(Refusal("vcs", file, text))
        return None
    if "@" in head and "://" in head:
        refused.append(Refusal("direct_url", file, text))
        return None
    if "://" in head:
        refused.append(Refusal("direct_url", file, text))
        return None
    if head.startswith((".", "/", "~", "file:")) or _ARCHIVE.search(head) or " @ " in head:
        refused.append(Refusal("local_path", file, text))
        return None
    if not _NAME.match(head):
        refused.append(Refusal("option", file, f"not a requirement: {text}"))
        return None
    return text


def _requirement_file(
    rel: str,
    files: dict[str, bytes],
    reqs: list[str],
    cons: list[str],
    refused: list[Refusal],
    seen: set[str],
) -> None:
    if rel in seen:
        return
    seen.add(rel)
    for line in _logical_lines(files[rel].decode("utf-8", "replace")):
        if line.startswith("-"):
            opt, _, rest = _split_opt(line)
            if opt in ("-r", "--requirement", "-c", "--constraint"):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), rest))
                if "://" in rest or target not in files:
                    refused.append(Refusal("local_path", rel, f"{line} (not a file of this repository)"))
                elif opt in ("-r", "--requirement"):
                    _requirement_file(target, files, reqs, cons, refused, seen)
                else:
                    sub: list[str] = []
                    _requirement_file(target, files, sub, sub, refused, seen)
                    cons.extend(sub)
            elif opt in _INDEX_OPTS:
                refused.append(Refusal("index_redirect", rel, line))
            elif opt in ("-e", "--editable"):
                refused.append(Refusal("editable", rel, line))
            elif opt == "--no-binary":
                refused.append(Refusal("sdist_only", rel, f"{line} (wheels only: sdists are never built)"))
            else:
                refused.append(Refusal("option", rel, line))
            continue
        parts = line.split(" --")
        kept = check_requirement(parts[0], rel, refused)
        if kept is not None:
            hashes = [p for p in parts[1:] if p.startswith("hash")]
            reqs.append(" ".join([kept, *("--" + h for h in hashes)]))


def _split_opt(line: str) -> tuple[str, str, str]:
    m = re.match(r"^(--?[A-Za-z][\w-]*)(?:\s*=\s*|\s+)?(.*)$", line)
    if not m:
        return line, "", ""
    return m.group(1), "", m.group(2).strip()


def _pyproject_requirements(data: bytes, refused: list[Refusal]) -> list[str]:
    try:
        doc = tomllib.loads(data.decode("utf-8", "replace"))
    except tomllib.TOMLDecodeError as e:
        refused.append(Refusal("option", "pyproject.toml", f"unreadable TOML: {e}"))
        return []
    project = doc.get("project") if isinstance(doc.get("project"), dict) else {}
    assert isinstance(project, dict)
    own = normalize(str(project.get("name", "")))
    extras = project.get("optional-dependencies") or {}
    groups = doc.get("dependency-groups") or {}
    out: list[str] = []
    done_extras: set[str] = set()

    def add(specs: Any, where: str) -> None:
        if not isinstance(specs, list):
            return
        for spec in specs:
            if isinstance(spec, dict) and "include-group" in spec:
                group(str(spec["include-group"]))
                continue
            if not isinstance(spec, str):
                continue
            m = _NAME.match(spec.strip())
            if own and m and normalize(m.group(1)) == own:  # `myproject[test]`: its own extras
                for extra in re.findall(r"[\w.-]+", m.group(2) or ""):
                    extra_group(extra)
                continue
            kept = check_requirement(spec, f"pyproject.toml ({where})", refused)
            if kept is not None:
                out.append(kept)

    def extra_group(name: str) -> None:
        if name in done_extras or not isinstance(extras, dict) or name not in extras:
            return
        done_extras.add(name)
        add(extras[name], f"optional-dependencies.{name}")

    done_groups: set[str] = set()

    def group(name: str) -> None:
        if name in done_groups or not isinstance(groups, dict) or name not in groups:
            return
        done_groups.add(name)
        add(groups[name], f"dependency-groups.{name}")

    add(project.get("dependencies"), "dependencies")
    for name in sorted(extras) if isinstance(extras, dict) else []:
        if normalize(name) in DEV_GROUPS:
            extra_group(name)
    for name in sorted(groups) if isinstance(groups, dict) else []:
        if normalize(name) in DEV_GROUPS:
            group(name)
    return out


def _uv_lock(data: bytes, refused: list[Refusal]) -> list[str]:
    doc = tomllib.loads(data.decode("utf-8", "replace"))
    packages = [p for p in doc.get("package", []) if isinstance(p, dict)]
    # A package's marker: the OR of the markers on the edges that reach it (any unconditional
    # edge: none). pip evaluates it for the box's own interpreter.
    edges: dict[str, set[str] | None] = {}
    for p in packages:
        lists: list[Any] = [p.get("dependencies", [])]
        for table in ("optional-dependencies", "dev-dependencies"):
            extra = p.get(table)
            if isinstance(extra, dict):
                lists.extend(extra.values())
        for deps in lists:
            for d in deps if isinstance(deps, list) else []:
                if not isinstance(d, dict) or "name" not in d:
                    continue
                name = normalize(str(d["name"]))
                marker = d.get("marker")
                if marker is None:
                    edges[name] = None
                elif name not in edges or edges[name] is not None:
                    current = edges.get(name) or set()
                    assert current is not None
                    current.add(str(marker))
                    edges[name] = current
    pins: list[str] = []
    for p in packages:
        name = str(p.get("name", ""))
        source = p.get("source") or {}
        if not isinstance(source, dict):
            continue
        if "registry" in source:
            version = p.get("version")
            if not version:
                continue
            markers = edges.get(normalize(name))
            suffix = " ; " + " or ".join(f"({m})" for m in sorted(markers)) if markers else ""
            pins.append(f"{name}=={version}{suffix}")
        elif "git" in source:
            refused.append(Refusal("vcs", "uv.lock", f"{name}: {source['git']}"))
        elif "url" in source:
            refused.append(Refusal("direct_url", "uv.lock", f"{name}: {source['url']}"))
        else:
            where = next(iter(source.values()), "")
            if where not in (".", ""):  # the project itself (editable/virtual ".") is never installed
                refused.append(Refusal("local_path", "uv.lock", f"{name}: {where}"))
    return pins


def _poetry_lock(data: bytes, refused: list[Refusal]) -> list[str]:
    doc = tomllib.loads(data.decode("utf-8", "replace"))
    pins: list[str] = []
    for p in doc.get("package", []):
        if not isinstance(p, dict) or not p.get("name") or not p.get("version"):
            continue
        name, version = str(p["name"]), str(p["version"])
        source = p.get("source") or {}
        kind = str(source.get("type", "")) if isinstance(source, dict) else ""
        url = str(source.get("url", "")) if isinstance(source, dict) else ""
        if kind == "git":
            refused.append(Refusal("vcs", "poetry.lock", f"{name}: {url}"))
            continue
        if kind == "url":
            refused.append(Refusal("direct_url", "poetry.lock", f"{name}: {url}"))
            continue
        if kind in ("file", "directory"):
            refused.append(Refusal("local_path", "poetry.lock", f"{name}: {url}"))
            continue
        if kind == "legacy":
            refused.append(
                Refusal(
                    "index_redirect",
                    "poetry.lock",
                    f"{name}: index {url} ignored, fetched from the configured index",
                )
            )
        marker = p.get("markers")
        pins.append(f"{name}=={version}" + (f" ; {marker}" if isinstance(marker, str) and marker else ""))
    return pins


def python_plan(m: Manifests) -> Plan:
    refused: list[Refusal] = []
    if "uv.lock" in m.files or "poetry.lock" in m.files:
        lock = "uv.lock" if "uv.lock" in m.files else "poetry.lock"
        try:
            pins = (
                _uv_lock(m.files[lock], refused)
                if lock == "uv.lock"
                else _poetry_lock(m.files[lock], refused)
            )
        except tomllib.TOMLDecodeError as e:
            return Plan({}, [Refusal("option", lock, f"unreadable TOML: {e}")], source=lock, empty=True)
        text = "".join(p + "\n" for p in pins)
        return Plan({"requirements.txt": text.encode()}, refused, lock=True, source=lock, empty=not pins)
    reqs: list[str] = []
    cons: list[str] = []
    seen: set[str] = set()
    roots = sorted(f for f in m.files if "/" not in f and REQUIREMENTS_NAME.match(f))
    for rel in roots:
        _requirement_file(rel, m.files, reqs, cons, refused, seen)
    if "pyproject.toml" in m.files:
        reqs.extend(_pyproject_requirements(m.files["pyproject.toml"], refused))
    files = {"requirements.txt": "".join(r + "\n" for r in reqs).encode()}
    if cons:
        files["constraints.txt"] = "".join(c + "\n" for c in cons).encode()
    sources = ", ".join(sorted(seen) + (["pyproject.toml"] if "pyproject.toml" in m.files else []))
    return Plan(files, refused, source=sources, empty=not reqs)


# --- node --------------------------------------------------------------------------------------

_NODE_DEP_TABLES = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")
_LOCAL_SPEC = re.compile(r"^(file:|link:|workspace:|portal:|\.{0,2}/|~/)")
_REMOTE_SPEC = re.compile(r"^(git(\+[a-z]+)?:|git@|https?:|github:|gitlab:|bitbucket:|gist:)", re.I)
_SHORTHAND = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(#.*)?$")  # user/repo = a GitHub repo


def _node_spec_refusal(name: str, spec: str) -> RefusalKind | None:
    if _LOCAL_SPEC.match(spec):
        return "local_path"
    if _REMOTE_SPEC.match(spec):
        return "vcs" if not spec.lower().startswith("http") else "direct_url"
    if _SHORTHAND.match(spec) and not spec.startswith("npm:"):
        return "vcs"
    return None


def node_plan(m: Manifests, registry: str) -> Plan:
    """`registry`: npm's configured registry URL (`npm config get registry` in the node image)."""
    refused: list[Refusal] = []
    if ".npmrc" in m.present:
        refused.append(
            Refusal("npmrc", ".npmrc", "the repository's .npmrc is never used (registry, auth, scripts)")
        )
    try:
        pkg = json.loads(m.files["package.json"])
    except (ValueError, UnicodeDecodeError) as e:
        return Plan({}, [Refusal("option", "package.json", f"unreadable JSON: {e}")], empty=True)
    if not isinstance(pkg, dict):
        return Plan({}, [Refusal("option", "package.json", "not a JSON object")], empty=True)
    removed: set[str] = set()
    for table in _NODE_DEP_TABLES:
        deps = pkg.get(table)
        if not isinstance(deps, dict):
            continue
        for name, spec in list(deps.items()):
            kind = _node_spec_refusal(name, str(spec))
            if kind is not None:
                refused.append(Refusal(kind, "package.json", f"{table}.{name}: {spec}"))
                del deps[name]
                removed.add(name)
    if "workspaces" in pkg:
        refused.append(Refusal("local_path", "package.json", "workspaces (local packages) are not installed"))
        del pkg["workspaces"]
    files = {"package.json": (json.dumps(pkg, indent=2) + "\n").encode()}
    lock_name = next((n for n in ("npm-shrinkwrap.json", "package-lock.json") if n in m.files), None)
    if lock_name is not None:
        try:
            lock = json.loads(m.files[lock_name])
        except (ValueError, UnicodeDecodeError) as e:
            return Plan({}, [*refused, Refusal("option", lock_name, f"unreadable JSON: {e}")], empty=True)
        _sanitize_lock(lock, lock_name, registry, removed, refused)
        files[lock_name] = (json.dumps(lock, indent=2) + "\n").encode()
    has_deps = any(isinstance(pkg.get(t), dict) and pkg[t] for t in _NODE_DEP_TABLES)
    return Plan(
        files, refused, lock=lock_name is not None, source=lock_name or "package.json", empty=not has_deps
    )


def _sanitize_lock(lock: Any, name: str, registry: str, removed: set[str], refused: list[Refusal]) -> None:
    if not isinstance(lock, dict):
        return
    reg = registry.rstrip("/") + "/"
    packages = lock.get("packages")
    if isinstance(packages, dict):
        root = packages.get("")
        if isinstance(root, dict):
            for table in _NODE_DEP_TABLES:
                deps = root.get(table)
                if isinstance(deps, dict):
                    for dep in removed & set(deps):
                        del deps[dep]
            root.pop("workspaces", None)
        for path in list(packages):
            if path == "":
                continue
            entry = packages[path]
            pkg_name = path.rsplit("node_modules/", 1)[-1]
            if pkg_name in removed and path == f"node_modules/{pkg_name}":
                del packages[path]
                continue
            if not isinstance(entry, dict):
                continue
            if entry.get("link") or (not path.startswith("node_modules/") and "node_modules/" not in path):
                refused.append(Refusal("local_path", name, f"{path}: a local/workspace package"))
                del packages[path]
                continue
            _check_resolved(entry, path, name, reg, refused, packages)
    deps_v1 = lock.get("dependencies")
    if isinstance(deps_v1, dict):  # lockfileVersion 1 (and the v2 back-compat copy)
        _sanitize_v1(deps_v1, name, reg, removed, refused)


def _check_resolved(
    entry: dict[str, Any], path: str, name: str, reg: str, refused: list[Refusal], container: dict[str, Any]
) -> None:
    resolved = entry.get("resolved")
    if not isinstance(resolved, str) or resolved.startswith(reg):
        return
    if (_REMOTE_SPEC.match(resolved) and not resolved.lower().startswith("http")) or resolved.startswith(
        "file:"
    ):
        kind: RefusalKind = "vcs" if not resolved.startswith("file:") else "local_path"
        refused.append(Refusal(kind, name, f"{path}: {resolved}"))
        del container[path]
        return
    refused.append(
        Refusal(
            "registry_redirect",
            name,
            f"{path}: {resolved} (outside the configured registry; fetched from it instead)",
        )
    )
    del entry["resolved"]


def _sanitize_v1(
    deps: dict[str, Any], name: str, reg: str, removed: set[str], refused: list[Refusal]
) -> None:
    for dep in list(deps):
        entry = deps[dep]
        if dep in removed:
            del deps[dep]
            continue
        if not isinstance(entry, dict):
            continue
        version = str(entry.get("version", ""))
        if _LOCAL_SPEC.match(version) or (_REMOTE_SPEC.match(version) and not version.startswith("http")):
            refused.append(
                Refusal("vcs" if _REMOTE_SPEC.match(version) else "local_path", name, f"{dep}: {version}")
            )
            del deps[dep]
            continue
        resolved = entry.get("resolved")
        if isinstance(resolved, str) and not resolved.startswith(reg):
            refused.append(
                Refusal("registry_redirect", name, f"{dep}: {resolved} (outside the configured registry)")
            )
            del entry["resolved"]
        nested = entry.get("dependencies")
        if isinstance(nested, dict):
            _sanitize_v1(nested, name, reg, set(), refused)


# --- go ----------------------------------------------------------------------------------------

_REPLACE_LINE = re.compile(r"^\s*(replace\s+)?(\S+(?:\s+v\S+)?)\s*=>\s*(\S+)(\s+v\S+)?\s*(//.*)?$")


def _local_target(target: str) -> bool:
    return target.startswith(("./", "../", "/")) or target in (".", "..")


def go_plan(m: Manifests) -> Plan:
    refused: list[Refusal] = []
    out: list[str] = []
    in_block = False
    for line in m.files["go.mod"].decode("utf-8", "replace").splitlines():
        stripped = line.strip()
        if in_block:
            if stripped.startswith(")"):
                in_block = False
                out.append(line)
                continue
            rm = _REPLACE_LINE.match(line)
            if rm and _local_target(rm.group(3)):
                refused.append(Refusal("local_replace", "go.mod", f"replace {rm.group(2)} => {rm.group(3)}"))
                continue
            out.append(line)
            continue
        if re.match(r"^replace\s*\(\s*$", stripped):
            in_block = True
            out.append(line)
            continue
        if stripped.startswith("replace "):
            rm = _REPLACE_LINE.match(line)
            if rm and _local_target(rm.group(3)):
                refused.append(Refusal("local_replace", "go.mod", f"replace {rm.group(2)} => {rm.group(3)}"))
                continue
        out.append(line)
    files = {"go.mod": ("\n".join(out) + "\n").encode()}
    if "go.sum" in m.files:
        files["go.sum"] = m.files["go.sum"]
    has_require = bool(re.search(r"^\s*require\b", "\n".join(out), re.M))
    return Plan(files, refused, lock="go.sum" in m.files, source="go.mod", empty=not has_require)


def plan(m: Manifests, *, npm_registry: str | None) -> Plan:
    if m.ecosystem == "python":
        return python_plan(m)
    if m.ecosystem == "node":
        return node_plan(m, npm_registry or "")
    return go_plan(m)
