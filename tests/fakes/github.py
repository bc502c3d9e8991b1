"""A fake GitHub for the test suite: the REST wire format githubkit expects, backed by REAL bare git
repositories, plus git smart HTTP (clone/fetch only) through `git http-backend`.

It runs an aiohttp server on its own event loop in a background thread, on 127.0.0.1 and a free
port, so a service started as a separate process can reach it:

    fake = FakeGitHub(tmp_path); fake.start()
    fake.api_url   -> http://127.0.0.1:PORT/api/v3      (the REST API; githubkit `base_url`)
    fake.web_url   -> http://127.0.0.1:PORT             (clone URLs: {web_url}/{owner}/{repo}.git)
    fake.app_id, fake.private_key_pem, fake.installation_id (of `fake.owner`, default "octo")

Auth, as GitHub does it for an App:
- App JWT (RS256, signed with `private_key_pem`; `iss` == app id; unexpired; `exp` at most ~10 min
  ahead) for `GET /repos/{o}/{r}/installation`, `GET /app`, `POST /app/installations/{id}/access_tokens`.
- Installation tokens (`ghs_…`, `Authorization: token X` or `Bearer X`) everywhere else. A token
  belongs to the installation of one owner (account); the access-token body's `repositories` (names)
  and `permissions` are honoured and recorded in `fake.tokens`. Scope rules (violations: 403
  "Resource not accessible by integration"):
    * the repo must be one of the token's repositories (all of the owner's when none were asked);
    * GET repo: any permission;  git data reads, compare: contents read|write;
    * blobs/trees/commits/refs writes: contents write;
    * list/get pulls: pull_requests read|write; create pull: pull_requests write;
    * check runs: checks read|write;  combined status: statuses read|write OR checks read|write;
    * git clone/fetch (smart HTTP, Basic `x-access-token:<token>`): contents read|write.
  Unknown repo -> 404 {"message": "Not Found"}; bad/expired/revoked token -> 401 "Bad credentials".
- The App itself is granted `APP_PERMISSIONS`; asking a token for more is 422.

Everything the server did is in `fake.requests` (RequestRecord); server-side bugs in the fake are
collected in `fake.errors` (answered as 500). Faults: `inject(...)`, `inject_secondary_rate_limit`,
`inject_primary_rate_limit`, `clear_faults()`. `reset()` clears faults, the request log, errors and
the check/status scripts (repos, tokens and pull requests stay; use unique repo names per test).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
import time
import traceback
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel
from yarl import URL

API_PREFIX = "/api/v3"
DOCS_URL = "https://docs.github.com/rest"
ZERO_SHA = "0" * 40
TOKEN_TTL_S = 3600
APP_PERMISSIONS: dict[str, str] = {
    "metadata": "read",
    "contents": "write",
    "pull_requests": "write",
    "checks": "read",
    "statuses": "read",
}
VALID_MODES = {"100644": "blob", "100755": "blob", "120000": "blob", "040000": "tree", "160000": "commit"}
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID."
)
_HEX_RE = re.compile(r"^[0-9a-f]{4,40}$")
_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
_IDENT_RE = re.compile(r"^(.*) <(.*)> (\d+) ([+-]\d{4})$")
_SEG = r"[^/]+"


def iso(when: dt.datetime | float) -> str:
    """GitHub's timestamp format (githubkit parses `expires_at` with exactly this)."""
    if isinstance(when, int | float):
        when = dt.datetime.fromtimestamp(when, dt.UTC)
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# --- payloads built from githubkit's own models --------------------------------------------------


def _models() -> Any:
    import githubkit_schemas.latest.models as models

    return models


def _is_unset(ann: Any) -> bool:
    return typing.get_origin(ann) is typing.Literal and all(
        type(a).__name__ == "Unset" for a in typing.get_args(ann)
    )


def _example_value(ann: Any, name: str) -> Any:
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(ann) if not _is_unset(a)]
        if type(None) in args:
            return None
        return _example_value(args[0], name)
    if origin is typing.Literal:
        return typing.get_args(ann)[0]
    if origin is list:
        return []
    if origin is dict:
        return {}
    if ann is type(None) or ann is typing.Any:
        return None
    if ann is str:
        if name.endswith("url"):
            return f"https://fake-github.invalid/{name}"
        if name == "sha" or name.endswith("_sha"):
            return ZERO_SHA
        return name
    if ann is bool:
        return False
    if ann is int:
        return 1
    if ann is float:
        return 0.0
    if ann is dt.datetime:
        return "2026-01-01T00:00:00Z"
    if ann is dt.date:
        return "2026-01-01"
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return _template(ann)
    raise TypeError(f"no example value for {ann!r} (field {name})")


def _template(model: type[BaseModel]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        if f.is_required():
            out[f.alias or name] = _example_value(f.annotation, name)
    return out


@cache
def _cached_template(model_name: str) -> dict[str, Any]:
    return _template(getattr(_models(), model_name))


def example(model_name: str, **fields: Any) -> dict[str, Any]:
    """A JSON object for githubkit model `model_name`: every required field filled with a dummy value,
    then `fields` laid over it (keys are JSON names: use `**{"_links": …}` for aliases). The result
    is validated with the model, so a response the fake sends is one githubkit parses."""
    out = copy.deepcopy(_cached_template(model_name))
    out.update(fields)
    getattr(_models(), model_name).model_validate(out)
    return out


# --- records ---------------------------------------------------------------------------------------


@dataclass
class IssuedToken:
    id: int
    token: str
    owner: str
    installation_id: int
    repositories: frozenset[str] | None  # lower-case repo names of `owner`; None = all of them
    permissions: dict[str, str]
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked: bool = False

    @property
    def expired(self) -> bool:
        return utcnow() >= self.expires_at

    @property
    def valid(self) -> bool:
        return not self.revoked and not self.expired

    def covers(self, owner: str, name: str) -> bool:
        if owner.lower() != self.owner.lower():
            return False
        return self.repositories is None or name.lower() in self.repositories

    def has(self, permission: str, level: str = "read") -> bool:
        got = self.permissions.get(permission)
        if got is None:
            return False
        return level == "read" or got in ("write", "admin")


@dataclass
class RequestRecord:
    method: str
    path: str  # API paths WITHOUT the /api/v3 prefix (e.g. /repos/o/r/git/refs); git paths as sent
    query: dict[str, str]
    auth: str  # none | app | installation | basic | invalid
    token_id: int | None
    status: int
    kind: str  # api | git
    fault: bool = False
    at: float = field(default_factory=time.time)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int
    remaining: int
    headers: dict[str, Any]
    body: Any


@dataclass
class RepoState:
    owner: str
    name: str
    path: Path
    id: int
    default_branch: str
    created_at: str
    installed: bool = True

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass
class PullRecord:
    number: int
    id: int
    owner: str
    name: str
    title: str
    body: str | None
    head: str  # branch name
    head_owner: str
    base: str
    draft: bool
    state: str
    created_at: str
    updated_at: str


@dataclass
class _Script:
    started: float
    steps: list[tuple[float, list[dict[str, Any]]]]

    def current(self) -> list[dict[str, Any]]:
        elapsed = time.monotonic() - self.started
        now: list[dict[str, Any]] = []
        for after, items in self.steps:
            if after <= elapsed:
                now = items
        return now


class GitError(Exception):
    pass


class ApiError(Exception):
    """Answered as GitHub does: `{"message", "documentation_url", "status", "errors"?}`."""

    def __init__(
        self, status: int, message: str, *, errors: list[Any] | None = None, headers: Mapping[str, str] = ()
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors
        self.headers = dict(headers)


def _not_found() -> ApiError:
    return ApiError(404, "Not Found")


def _forbidden() -> ApiError:
    return ApiError(403, "Resource not accessible by integration")


def _unprocessable(message: str, errors: list[Any] | None = None) -> ApiError:
    return ApiError(422, message, errors=errors)


# --- git plumbing ----------------------------------------------------------------------------------


def _git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "LC_ALL": "C",
    }
    if extra:
        env.update(extra)
    return env


def git(
    repo: Path | None, *args: str, input: bytes | None = None, env: Mapping[str, str] | None = None
) -> bytes:
    """Run git (against the bare repo `repo` when given); stdout bytes, GitError on failure."""
    cmd = ["git"] + ([f"--git-dir={repo}"] if repo is not None else []) + list(args)
    res = subprocess.run(cmd, input=input, capture_output=True, env=_git_env(env), check=False)
    if res.returncode != 0:
        raise GitError(f"{' '.join(args[:3])}: {res.stderr.decode(errors='replace').strip()}")
    return res.stdout


def _git_ok(repo: Path, *args: str) -> bool:
    res = subprocess.run(
        ["git", f"--git-dir={repo}", *args], capture_output=True, env=_git_env(), check=False
    )
    return res.returncode == 0


def _object_type(repo: Path, sha: str) -> str | None:
    if not _HEX_RE.match(sha):
        return None
    try:
        return git(repo, "cat-file", "-t", sha).decode().strip()
    except GitError:
        return None


def _full_sha(repo: Path, sha: str, want: str | None = None) -> str | None:
    """The 40-hex name of object `sha` (abbreviations allowed), of type `want` if given."""
    if not _HEX_RE.match(sha):
        return None
    spec = f"{sha}^{{{want}}}" if want else sha
    try:
        out = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", spec).decode().strip()
    except GitError:
        return None
    if want is None and _object_type(repo, out) is None:
        return None
    return out if _SHA_RE.match(out) else None


def _ref_sha(repo: Path, fullref: str) -> str | None:
    try:
        out = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", fullref).decode().strip()
    except GitError:
        return None
    return out or None


def _resolve_commitish(repo: Path, ref: str) -> str | None:
    """A branch, tag, `heads/x`/`tags/x`/`refs/...` name or a (short) sha -> commit sha."""
    if not ref or ref.startswith("-"):
        return None
    candidates = [f"refs/heads/{ref}", f"refs/tags/{ref}"]
    if ref.startswith(("heads/", "tags/")):
        candidates.insert(0, f"refs/{ref}")
    if ref.startswith("refs/"):
        candidates.insert(0, ref)
    for c in candidates:
        if _git_ok(repo, "show-ref", "--verify", "--quiet", c):
            return _full_sha(repo, _ref_sha(repo, c) or "", "commit")
    return _full_sha(repo, ref, "commit")


def _parse_commit(repo: Path, sha: str) -> dict[str, Any]:
    raw = git(repo, "cat-file", "commit", sha)
    head, _, message = raw.partition(b"\n\n")
    info: dict[str, Any] = {"parents": [], "message": message.decode(errors="replace")}
    for line in head.decode(errors="replace").split("\n"):
        if line.startswith(" "):  # continuation (gpgsig)
            continue
        key, _, value = line.partition(" ")
        if key == "tree":
            info["tree"] = value
        elif key == "parent":
            info["parents"].append(value)
        elif key in ("author", "committer"):
            m = _IDENT_RE.match(value)
            if m:
                info[key] = {"name": m.group(1), "email": m.group(2), "date": iso(int(m.group(3)))}
            else:
                info[key] = {"name": value, "email": "", "date": iso(0)}
    return info


def _git_date(value: str | None) -> str | None:
    """An ISO 8601 date from a request body -> git's internal `<epoch> <+hhmm>` format."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _unprocessable(f"Invalid date: {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    off = when.utcoffset() or dt.timedelta(0)
    minutes = int(off.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{int(when.timestamp())} {sign}{minutes // 60:02d}{minutes % 60:02d}"


def _check_path(path: Any) -> str:
    if not isinstance(path, str) or not path:
        raise _unprocessable("tree.path is missing or not a string")
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..", ".git") for p in parts) or "\0" in path:
        raise _unprocessable(f"tree.path contains a malformed path component: {path!r}")
    return path


def _index_entries(repo: Path, env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    out = git(repo, "ls-files", "-z", "--stage", env=env)
    entries: dict[str, tuple[str, str]] = {}
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        mode, sha, _stage = meta.decode().split(" ")
        entries[path.decode("utf-8", errors="surrogateescape")] = (mode, sha)
    return entries


def _hash_blobs(repo: Path, contents: list[bytes]) -> list[str]:
    if not contents:
        return []
    with tempfile.TemporaryDirectory(prefix="fakegh-blobs-") as d:
        paths = []
        for i, data in enumerate(contents):
            p = Path(d) / str(i)
            p.write_bytes(data)
            paths.append(str(p))
        out = git(repo, "hash-object", "-w", "--no-filters", "--stdin-paths", input="\n".join(paths).encode())
    shas = out.decode().split()
    assert len(shas) == len(contents)
    return shas


def build_tree(repo: Path, base_tree: str | None, entries: list[dict[str, Any]]) -> str:
    """GitHub's create-tree semantics on a temporary index."""
    if not isinstance(entries, list):
        raise _unprocessable("Invalid request: tree must be an array")
    with tempfile.TemporaryDirectory(prefix="fakegh-index-") as d:
        env = {"GIT_INDEX_FILE": str(Path(d) / "index")}
        if base_tree is not None:
            if not isinstance(base_tree, str) or _object_type(repo, base_tree) not in ("tree", "commit"):
                raise _unprocessable("Invalid tree info: base_tree does not exist")
            git(repo, "read-tree", "--end-of-options", base_tree, env=env)
        else:
            git(repo, "read-tree", "--empty", env=env)
        index = _index_entries(repo, env)
        # inline contents first (one hash-object for all), then apply entries in order
        inline = [e for e in entries if isinstance(e, dict) and isinstance(e.get("content"), str)]
        blob_of = dict(
            zip(
                (id(e) for e in inline),
                _hash_blobs(repo, [e["content"].encode("utf-8", errors="surrogatepass") for e in inline]),
                strict=True,
            )
        )
        for e in entries:
            if not isinstance(e, dict):
                raise _unprocessable("Invalid tree info")
            path = _check_path(e.get("path"))
            mode = e.get("mode")
            kind = e.get("type")
            if mode not in VALID_MODES:
                raise _unprocessable(f"Invalid tree info: tree.mode {mode!r} is not a valid mode")
            if kind != VALID_MODES[mode]:
                raise _unprocessable(f"Invalid tree info: tree.type {kind!r} does not match mode {mode}")
            has_sha, has_content = "sha" in e, "content" in e
            if has_sha == has_content:
                raise _unprocessable(
                    "Must supply either tree.sha or tree.content. "
                    "Request will be rejected if both are present."
                )
            under = [p for p in index if p.startswith(path + "/")]
            if has_sha and e["sha"] is None:
                # deletion: as on GitHub, only of an entry that exists (deleting a missing path or a
                # whole folder is 422 GitRPC::BadObjectState there too)
                if path not in index:
                    raise _unprocessable("GitRPC::BadObjectState")
                del index[path]
                continue
            if has_content:
                if kind != "blob" or not isinstance(e["content"], str):
                    raise _unprocessable("Invalid tree info: content is only for blobs")
                sha = blob_of[id(e)]
            else:
                sha = e["sha"]
                if not isinstance(sha, str) or not _SHA_RE.match(sha):
                    raise _unprocessable("Invalid tree info: tree.sha is not a valid sha")
                if kind != "commit" and _object_type(repo, sha) != kind:
                    raise _unprocessable(f"Invalid tree info: tree.sha {sha} is not a {kind}")
            # replacing: a folder by a file, a file by a folder, or a folder by another tree
            for p in under:
                index.pop(p, None)
            parts = path.split("/")
            for i in range(1, len(parts)):
                index.pop("/".join(parts[:i]), None)
            if kind == "tree":
                index.pop(path, None)
                listing = git(repo, "ls-tree", "-r", "-z", "--full-tree", sha)
                for rec in listing.split(b"\0"):
                    if rec:
                        meta, _, sub = rec.partition(b"\t")
                        m, _t, s = meta.decode().split(" ")
                        index[f"{path}/{sub.decode('utf-8', errors='surrogateescape')}"] = (m, s)
            else:
                index[path] = (mode, sha)
        # rewrite the index from the final entry set
        git(repo, "read-tree", "--empty", env=env)
        if index:
            lines = b"".join(
                f"{m} {s}\t".encode() + p.encode("utf-8", errors="surrogateescape") + b"\0"
                for p, (m, s) in sorted(index.items())
            )
            git(repo, "update-index", "-z", "--index-info", input=lines, env=env)
        return git(repo, "write-tree", env=env).decode().strip()


def _ls_tree(repo: Path, sha: str, recursive: bool) -> list[dict[str, Any]]:
    args = ["ls-tree", "-z", "-l"] + (["-r", "-t"] if recursive else []) + [sha]
    items = []
    for rec in git(repo, *args).split(b"\0"):
        if not rec:
            continue
        meta, _, path = rec.partition(b"\t")
        mode, kind, obj, size = meta.decode().split()
        items.append(
            {
                "path": path.decode("utf-8", errors="replace"),
                "mode": mode,
                "type": kind,
                "sha": obj,
                "size": None if size == "-" else int(size),
            }
        )
    return items


# --- the fake ------------------------------------------------------------------------------------

Handler = Callable[..., Any]


class FakeGitHub:
    def __init__(self, root: Path, *, owner: str = "octo", app_slug: str = "dockyard-test"):
        self.root = Path(root)
        self.repos_root = self.root / "repos"
        self.repos_root.mkdir(parents=True, exist_ok=True)
        self.owner = owner
        self.app_slug = app_slug
        self.bot_login = f"{app_slug}[bot]"
        self.app_id = 100_000 + secrets.randbelow(800_000)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.private_key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()
        self._public_key = key.public_key()
        self.token_ttl_s = TOKEN_TTL_S
        self.etags = True  # answer If-None-Match with 304, as GitHub does

        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], RepoState] = {}
        self._installations: dict[str, int] = {}  # owner (lower) -> installation id
        self._tokens: dict[str, IssuedToken] = {}
        self._pulls: dict[tuple[str, str], list[PullRecord]] = {}
        self._check_scripts: dict[tuple[str, str, str], _Script] = {}
        self._status_scripts: dict[tuple[str, str, str], _Script] = {}
        self._run_ids: dict[tuple[str, str, str, str], int] = {}
        self._first_seen: dict[tuple[Any, ...], str] = {}  # stable timestamps -> stable ETags
        self._faults: list[Fault] = []
        self._ref_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._ids = iter(range(1_000_001, 10**9))
        self.requests: list[RequestRecord] = []
        self.errors: list[str] = []

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self._routes = self._build_routes()
        self.installation_id = self._installation_for(owner)

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        assert self._thread is None, "already started"
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-github", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=30)
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, auto_decompress=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
        loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def web_url(self) -> str:
        assert self.port is not None, "start() the fake first"
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return self.web_url + API_PREFIX

    def clone_url(self, owner: str, name: str) -> str:
        return f"{self.web_url}/{owner}/{name}.git"

    # --- state helpers for tests ---------------------------------------------------------------

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def _installation_for(self, owner: str) -> int:
        with self._lock:
            key = owner.lower()
            if key not in self._installations:
                self._installations[key] = 40_000_000 + len(self._installations) + 1
            return self._installations[key]

    def installation_id_for(self, owner: str) -> int:
        return self._installation_for(owner)

    def _repo(self, owner: str, name: str) -> RepoState | None:
        with self._lock:
            return self._repos.get((owner.lower(), name.lower()))

    def _must_repo(self, owner: str, name: str) -> RepoState:
        r = self._repo(owner, name)
        if r is None:
            raise KeyError(f"no fake repo {owner}/{name}")
        return r

    def repo_path(self, owner: str, name: str) -> Path:
        return self._must_repo(owner, name).path

    def create_repo(
        self,
        owner: str,
        name: str,
        files: Mapping[str, bytes | str],
        *,
        default_branch: str = "main",
        executable: Iterable[str] = (),
        symlinks: Mapping[str, str] | None = None,
        message: str = "initial commit",
    ) -> Path:
        """A bare repository with one commit holding `files` (+ `symlinks` path -> target)."""
        self._installation_for(owner)
        path = self.repos_root / owner / f"{name}.git"
        if self._repo(owner, name) is not None or path.exists():
            raise ValueError(f"repo {owner}/{name} exists")
        path.parent.mkdir(parents=True, exist_ok=True)
        git(None, "init", "-q", "--bare", f"--initial-branch={default_branch}", str(path))
        git(path, "config", "uploadpack.allowAnySHA1InWant", "true")
        git(path, "config", "uploadpack.allowFilter", "true")
        git(path, "config", "http.receivepack", "false")
        entries = self._file_entries(files, set(executable), symlinks or {})
        tree = self._tree_with_bytes(path, None, entries)
        sha = self._commit_tree(path, tree, [], message)
        git(path, "update-ref", f"refs/heads/{default_branch}", sha, ZERO_SHA)
        with self._lock:
            self._repos[(owner.lower(), name.lower())] = RepoState(
                owner=owner,
                name=name,
                path=path,
                id=self._next_id(),
                default_branch=default_branch,
                created_at=iso(utcnow()),
            )
        return path

    @staticmethod
    def _file_entries(
        files: Mapping[str, bytes | str | None], executable: set[str], symlinks: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        blobs: list[tuple[str, bytes]] = []
        for p, data in files.items():
            if data is None:
                entries.append({"path": p, "mode": "100644", "type": "blob", "sha": None})
            else:
                blobs.append((p, data.encode() if isinstance(data, str) else data))
        for p, target in symlinks.items():
            blobs.append((p, target.encode()))
        for p, data in blobs:
            mode = "120000" if p in symlinks else "100755" if p in executable else "100644"
            entries.append({"path": p, "mode": mode, "type": "blob", "_bytes": data})
        return entries

    def _commit_tree(
        self, path: Path, tree: str, parents: list[str], message: str, env: Mapping[str, str] | None = None
    ) -> str:
        ident = {
            "GIT_AUTHOR_NAME": "Fake Maintainer",
            "GIT_AUTHOR_EMAIL": "maintainer@fake-github.invalid",
            "GIT_COMMITTER_NAME": "Fake Maintainer",
            "GIT_COMMITTER_EMAIL": "maintainer@fake-github.invalid",
        }
        ident.update(env or {})
        args = ["commit-tree", tree]
        for p in parents:
            args += ["-p", p]
        return git(path, *args, input=message.encode(), env=ident).decode().strip()

    def _tree_with_bytes(self, path: Path, base: str | None, entries: list[dict[str, Any]]) -> str:
        """build_tree, but entries may carry raw `_bytes` (hashed here) instead of text content."""
        raw = [e for e in entries if "_bytes" in e]
        for e, sha in zip(raw, _hash_blobs(path, [e.pop("_bytes") for e in raw]), strict=True):
            e["sha"] = sha
        return build_tree(path, base, entries)

    def head(self, owner: str, name: str, branch: str | None = None) -> str | None:
        r = self._must_repo(owner, name)
        return _ref_sha(r.path, f"refs/heads/{branch or r.default_branch}")

    def branches(self, owner: str, name: str) -> dict[str, str]:
        r = self._must_repo(owner, name)
        out = git(r.path, "for-each-ref", "--format=%(refname:strip=2) %(objectname)", "refs/heads/")
        return dict(line.split(" ", 1) for line in out.decode().splitlines() if line)  # type: ignore[misc]

    def git(self, owner: str, name: str, *args: str) -> str:
        """Run git in the bare repo (e.g. `fake.git("octo", "r", "log", "--format=%H", "main")`)."""
        return git(self.repo_path(owner, name), *args).decode()

    def push_commit(
        self,
        owner: str,
        name: str,
        branch: str,
        files_changed: Mapping[str, bytes | str | None],
        deleted: Iterable[str] = (),
        *,
        message: str = "a commit behind the service's back",
        executable: Iterable[str] = (),
        symlinks: Mapping[str, str] | None = None,
        base: str | None = None,
    ) -> str:
        """Commit on top of `branch` (or `base` sha/branch when the branch does not exist yet) and
        move the branch there, as another pusher would. Returns the new sha."""
        r = self._must_repo(owner, name)
        parent = _ref_sha(r.path, f"refs/heads/{branch}")
        old = parent or ZERO_SHA
        if parent is None:
            parent = _resolve_commitish(r.path, base or r.default_branch)
            if parent is None:
                raise ValueError(f"no branch {branch} and no base in {owner}/{name}")
        changes: dict[str, bytes | str | None] = dict(files_changed)
        for p in deleted:
            changes[p] = None
        entries = self._file_entries(changes, set(executable), symlinks or {})
        tree = self._tree_with_bytes(r.path, parent, entries)
        sha = self._commit_tree(r.path, tree, [parent], message)
        git(r.path, "update-ref", f"refs/heads/{branch}", sha, old)
        return sha

    def create_branch(self, owner: str, name: str, branch: str, sha_or_ref: str) -> str:
        r = self._must_repo(owner, name)
        sha = _resolve_commitish(r.path, sha_or_ref)
        if sha is None:
            raise ValueError(f"unknown commit {sha_or_ref}")
        git(r.path, "update-ref", f"refs/heads/{branch}", sha, ZERO_SHA)
        return sha

    def set_installed(self, owner: str, name: str, installed: bool) -> None:
        """An App not installed on a repo: GET /repos/{o}/{r}/installation answers 404."""
        self._must_repo(owner, name).installed = installed

    def pulls(self, owner: str, name: str) -> list[PullRecord]:
        with self._lock:
            return list(self._pulls.get((owner.lower(), name.lower()), []))

    @property
    def tokens(self) -> list[IssuedToken]:
        with self._lock:
            return sorted(self._tokens.values(), key=lambda t: t.id)

    def token_info(self, token: str) -> IssuedToken | None:
        with self._lock:
            return self._tokens.get(token)

    def expire_token(self, token: str) -> None:
        with self._lock:
            self._tokens[token].expires_at = utcnow() - dt.timedelta(seconds=1)

    def requests_matching(self, method: str | None = None, path_regex: str = "") -> list[RequestRecord]:
        rx = re.compile(path_regex)
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method.upper()) and rx.search(r.path)
            ]

    # check runs and statuses ------------------------------------------------------------------

    def _sha_key(self, owner: str, name: str, sha_or_ref: str) -> tuple[str, str, str]:
        r = self._must_repo(owner, name)
        sha = _resolve_commitish(r.path, sha_or_ref)
        if sha is None:
            raise ValueError(f"unknown commit {sha_or_ref} in {owner}/{name}")
        return (owner.lower(), name.lower(), sha)

    def script_checks(
        self, owner: str, name: str, sha: str, steps: Iterable[tuple[float, list[dict[str, Any]]]]
    ) -> None:
        """From now on, after `after_seconds` the commit's check runs are `runs` (the latest step
        whose time has come wins; before the first step there are none). A run is a dict with
        `name`, `status` (queued|in_progress|completed) and `conclusion` (None|success|failure|
        neutral|cancelled|skipped|timed_out|action_required), optionally `details_url`,
        `output` ({title, summary, text}), `started_at`, `completed_at`."""
        key = self._sha_key(owner, name, sha)
        with self._lock:
            self._check_scripts[key] = _Script(time.monotonic(), sorted(steps, key=lambda s: s[0]))

    def set_checks(self, owner: str, name: str, sha: str, runs: list[dict[str, Any]]) -> None:
        self.script_checks(owner, name, sha, [(0.0, runs)])

    def script_statuses(
        self, owner: str, name: str, sha: str, steps: Iterable[tuple[float, list[dict[str, Any]]]]
    ) -> None:
        """Like script_checks for commit statuses: dicts with `context`, `state` (pending|success|
        failure|error), optionally `description`, `target_url`."""
        key = self._sha_key(owner, name, sha)
        with self._lock:
            self._status_scripts[key] = _Script(time.monotonic(), sorted(steps, key=lambda s: s[0]))

    def set_statuses(self, owner: str, name: str, sha: str, statuses: list[dict[str, Any]]) -> None:
        self.script_statuses(owner, name, sha, [(0.0, statuses)])

    # faults -----------------------------------------------------------------------------------

    def inject(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        headers: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> None:
        """The next `times` requests whose method matches (`*` = any) and whose path (API paths
        without the /api/v3 prefix, git paths as sent) matches `path_regex` (re.search) get `status`
        with `headers` (a callable value is called at answer time) and `body` (dict/list -> JSON,
        str -> text; default: a GitHub-style JSON message)."""
        with self._lock:
            self._faults.append(
                Fault(method.upper(), re.compile(path_regex), status, times, dict(headers or {}), body)
            )

    def inject_secondary_rate_limit(
        self, method: str, path_regex: str, *, retry_after: int = 1, times: int = 1
    ) -> None:
        self.inject(
            method,
            path_regex,
            403,
            times=times,
            headers={"Retry-After": str(retry_after)},
            body={"message": SECONDARY_RATE_LIMIT_MESSAGE, "documentation_url": DOCS_URL},
        )

    def inject_primary_rate_limit(
        self, method: str, path_regex: str, *, reset_in: int = 1, times: int = 1
    ) -> None:
        self.inject(
            method,
            path_regex,
            403,
            times=times,
            headers={
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": "5000",
                "x-ratelimit-resource": "core",
                "x-ratelimit-reset": lambda: str(int(time.time()) + reset_in),
            },
            body={
                "message": f"API rate limit exceeded for installation ID {self.installation_id}.",
                "documentation_url": DOCS_URL,
            },
        )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self.errors.clear()
            self._check_scripts.clear()
            self._status_scripts.clear()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for f in self._faults:
                if f.remaining > 0 and f.method in ("*", method) and f.pattern.search(path):
                    f.remaining -= 1
                    if f.remaining == 0:
                        self._faults.remove(f)
                    return f
        return None

    # --- HTTP ---------------------------------------------------------------------------------------

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], Handler, Any]]:
        repo = rf"/repos/(?P<owner>{_SEG})/(?P<repo>{_SEG})"
        contents_r = [("contents", "read")]
        contents_w = [("contents", "write")]
        table: list[tuple[str, str, Handler, Any]] = [
            ("GET", r"/app", self._h_app, "app"),
            ("GET", repo + r"/installation", self._h_repo_installation, "app"),
            ("POST", r"/app/installations/(?P<iid>\d+)/access_tokens", self._h_access_token, "app"),
            ("DELETE", r"/installation/token", self._h_revoke, "token"),
            ("GET", repo, self._h_repo, []),
            ("GET", repo + r"/git/ref/(?P<ref>.+)", self._h_get_ref, contents_r),
            ("GET", repo + r"/git/matching-refs/(?P<ref>.*)", self._h_matching_refs, contents_r),
            ("POST", repo + r"/git/refs", self._h_create_ref, contents_w),
            ("PATCH", repo + r"/git/refs/(?P<ref>.+)", self._h_update_ref, contents_w),
            ("DELETE", repo + r"/git/refs/(?P<ref>.+)", self._h_delete_ref, contents_w),
            ("GET", repo + r"/git/commits/(?P<sha>[^/]+)", self._h_get_commit, contents_r),
            ("POST", repo + r"/git/commits", self._h_create_commit, contents_w),
            ("GET", repo + r"/git/trees/(?P<sha>[^/]+)", self._h_get_tree, contents_r),
            ("POST", repo + r"/git/trees", self._h_create_tree, contents_w),
            ("GET", repo + r"/git/blobs/(?P<sha>[^/]+)", self._h_get_blob, contents_r),
            ("POST", repo + r"/git/blobs", self._h_create_blob, contents_w),
            ("GET", repo + r"/compare/(?P<basehead>.+)", self._h_compare, contents_r),
            ("GET", repo + r"/pulls", self._h_list_pulls, [("pull_requests", "read")]),
            ("POST", repo + r"/pulls", self._h_create_pull, [("pull_requests", "write")]),
            ("GET", repo + r"/pulls/(?P<number>\d+)", self._h_get_pull, [("pull_requests", "read")]),
            ("GET", repo + r"/commits/(?P<ref>.+)/check-runs", self._h_check_runs, [("checks", "read")]),
            (
                "GET",
                repo + r"/commits/(?P<ref>.+)/status",
                self._h_combined_status,
                [("statuses", "read"), ("checks", "read")],
            ),
        ]
        return [(m, re.compile("^" + p + "$"), h, need) for m, p, h, need in table]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        is_api = path == API_PREFIX or path.startswith(API_PREFIX + "/")
        rel = (path[len(API_PREFIX) :] or "/") if is_api else path
        record = RequestRecord(
            method=request.method,
            path=rel,
            query=dict(request.query),
            auth="none",
            token_id=None,
            status=0,
            kind="api" if is_api else "git",
        )
        with self._lock:
            self.requests.append(record)
        try:
            fault = self._take_fault(request.method, rel)
            if fault is not None:
                record.fault = True
                resp = self._fault_response(fault)
            elif is_api:
                resp = await self._api(request, rel, record)
            else:
                resp = await self._git_http(request, record)
        except ApiError as e:
            resp = self._error_response(e)
        except Exception as e:  # a bug in the fake: make it loud
            tb = traceback.format_exc()
            with self._lock:
                self.errors.append(f"{request.method} {path}: {e!r}\n{tb}")
            resp = web.json_response({"message": f"fake github bug: {e!r}"}, status=500)
        record.status = resp.status
        return resp

    @staticmethod
    def _fault_response(f: Fault) -> web.Response:
        headers = {k: (v() if callable(v) else str(v)) for k, v in f.headers.items()}
        body = f.body
        if body is None:
            body = {
                "message": "Server Error" if f.status >= 500 else "Injected fault",
                "documentation_url": DOCS_URL,
            }
        if isinstance(body, dict | list):
            return web.json_response(body, status=f.status, headers=headers)
        return web.Response(text=str(body), status=f.status, headers=headers)

    @staticmethod
    def _error_response(e: ApiError) -> web.Response:
        body: dict[str, Any] = {"message": e.message, "documentation_url": DOCS_URL, "status": str(e.status)}
        if e.errors is not None:
            body["errors"] = e.errors
        return web.json_response(body, status=e.status, headers=e.headers)

    # auth -----------------------------------------------------------------------------------------

    def _parse_auth(self, request: web.Request) -> tuple[str, Any]:
        """-> (kind, detail): ("none", None) | ("app", claims) | ("installation", IssuedToken) |
        ("basic", (user, password)) | ("invalid", reason)."""
        header = request.headers.get("Authorization", "")
        if not header:
            return "none", None
        scheme, _, value = header.partition(" ")
        value = value.strip()
        scheme = scheme.lower()
        if scheme == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except Exception:
                return "invalid", "Bad credentials"
            return "basic", (user, password)
        if scheme not in ("token", "bearer"):
            return "invalid", "Bad credentials"
        if value.count(".") == 2 and not value.startswith("ghs_"):
            try:
                claims = jwt.decode(
                    value,
                    self._public_key,
                    algorithms=["RS256"],
                    leeway=60,
                    options={"require": ["exp", "iat", "iss"], "verify_iss": False},
                )
            except jwt.ExpiredSignatureError:
                return (
                    "invalid",
                    "'Expiration time' claim ('exp') must be a numeric value representing the future "
                    "time at which the assertion expires",
                )
            except jwt.PyJWTError:
                return "invalid", "A JSON web token could not be decoded"
            if str(claims.get("iss")) != str(self.app_id):
                return "invalid", "'Issuer' claim ('iss') must be an Integer"
            if float(claims["exp"]) - time.time() > 660:
                return "invalid", "'Expiration time' claim ('exp') is too far in the future"
            return "app", claims
        with self._lock:
            tok = self._tokens.get(value)
        if tok is None or not tok.valid:
            return "invalid", "Bad credentials"
        return "installation", tok

    # api ----------------------------------------------------------------------------------------

    async def _api(self, request: web.Request, rel: str, record: RequestRecord) -> web.StreamResponse:
        kind, detail = self._parse_auth(request)
        record.auth = kind
        if isinstance(detail, IssuedToken):
            record.token_id = detail.id
        allowed_methods = set()
        for method, rx, handler, need in self._routes:
            m = rx.match(rel)
            if m is None:
                continue
            allowed_methods.add(method)
            if method != request.method:
                continue
            params = m.groupdict()
            if kind == "none":
                raise ApiError(401, "Requires authentication")
            if kind == "invalid":
                raise ApiError(401, str(detail))
            if need == "app":
                if kind != "app":
                    raise ApiError(401, "A JSON web token could not be decoded")
                repo_state = None
            else:
                if kind != "installation":
                    raise ApiError(401, "Bad credentials")
                tok: IssuedToken = detail
                repo_state = None
                if "owner" in params:
                    repo_state = self._repo(params["owner"], params["repo"])
                    if repo_state is None:
                        raise _not_found()
                    if not tok.covers(repo_state.owner, repo_state.name):
                        raise _forbidden()
                    if need and not any(tok.has(p, lvl) for p, lvl in need):
                        raise _forbidden()
            body: Any = None
            if request.method in ("POST", "PATCH", "PUT"):
                raw = await request.read()
                if request.headers.get("Content-Encoding", "").lower() == "gzip":
                    raw = gzip.decompress(raw)
                if raw.strip():
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise ApiError(400, "Problems parsing JSON") from None
            result = await handler(request, repo_state, body, detail, **params)
            return self._respond(request, result)
        if allowed_methods:
            raise ApiError(404, "Not Found")
        raise _not_found()

    def _respond(self, request: web.Request, result: Any) -> web.StreamResponse:
        if isinstance(result, web.StreamResponse):
            return result
        status, data, headers = (*result, {})[:3] if isinstance(result, tuple) else (200, result, {})
        if status == 204:
            return web.Response(status=204, headers=headers)
        text = json.dumps(data, separators=(",", ":"))
        headers = dict(headers)
        headers.setdefault("X-GitHub-Media-Type", "github.v3; format=json")
        if request.method == "GET" and status == 200 and self.etags:
            etag = 'W/"' + hashlib.sha256(text.encode()).hexdigest() + '"'
            headers["ETag"] = etag
            headers["Cache-Control"] = "private, max-age=60, s-maxage=60"
            headers["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
            inm = request.headers.get("If-None-Match", "")
            if etag in [t.strip() for t in inm.split(",")]:
                return web.Response(status=304, headers=headers)
        return web.Response(text=text, status=status, content_type="application/json", headers=headers)

    def _ref_lock(self, r: RepoState) -> asyncio.Lock:
        key = (r.owner.lower(), r.name.lower())
        lock = self._ref_locks.get(key)
        if lock is None:
            lock = self._ref_locks[key] = asyncio.Lock()
        return lock

    @staticmethod
    async def _run(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except GitError as e:
            raise _unprocessable(str(e)) from None

    # object builders ------------------------------------------------------------------------

    def _user(self, login: str, *, bot: bool = False, uid: int | None = None) -> dict[str, Any]:
        uid = uid if uid is not None else (int(hashlib.sha1(login.encode()).hexdigest()[:7], 16))
        return example(
            "SimpleUser",
            login=login,
            id=uid,
            node_id=base64.b64encode(f"04:User{uid}".encode()).decode(),
            avatar_url=f"https://avatars.fake-github.invalid/u/{uid}",
            gravatar_id="",
            url=f"{self.api_url}/users/{login}",
            html_url=f"{self.web_url}/{login}",
            followers_url=f"{self.api_url}/users/{login}/followers",
            following_url=f"{self.api_url}/users/{login}/following{{/other_user}}",
            gists_url=f"{self.api_url}/users/{login}/gists{{/gist_id}}",
            starred_url=f"{self.api_url}/users/{login}/starred{{/owner}}{{/repo}}",
            subscriptions_url=f"{self.api_url}/users/{login}/subscriptions",
            organizations_url=f"{self.api_url}/users/{login}/orgs",
            repos_url=f"{self.api_url}/users/{login}/repos",
            events_url=f"{self.api_url}/users/{login}/events{{/privacy}}",
            received_events_url=f"{self.api_url}/users/{login}/received_events",
            type="Bot" if bot else "Organization",
            site_admin=False,
        )

    def _bot(self) -> dict[str, Any]:
        return self._user(self.bot_login, bot=True)

    def _repo_urls(self, r: RepoState) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{r.owner}/{r.name}"
        return {
            "id": r.id,
            "node_id": base64.b64encode(f"010:Repository{r.id}".encode()).decode(),
            "name": r.name,
            "full_name": r.full_name,
            "owner": self._user(r.owner),
            "private": True,
            "html_url": f"{self.web_url}/{r.owner}/{r.name}",
            "description": None,
            "fork": False,
            "url": api,
            "archive_url": api + "/{archive_format}{/ref}",
            "branches_url": api + "/branches{/branch}",
            "commits_url": api + "/commits{/sha}",
            "compare_url": api + "/compare/{base}...{head}",
            "contents_url": api + "/contents/{+path}",
            "git_commits_url": api + "/git/commits{/sha}",
            "git_refs_url": api + "/git/refs{/sha}",
            "git_tags_url": api + "/git/tags{/sha}",
            "pulls_url": api + "/pulls{/number}",
            "statuses_url": api + "/statuses/{sha}",
            "trees_url": api + "/git/trees{/sha}",
            "blobs_url": api + "/git/blobs{/sha}",
            "default_branch": r.default_branch,
            "visibility": "private",
            "created_at": r.created_at,
            "updated_at": r.created_at,
            "pushed_at": r.created_at,
        }

    def _repo_obj(self, model: str, r: RepoState) -> dict[str, Any]:
        fields = self._repo_urls(r)
        allowed = getattr(_models(), model).model_fields
        aliases = {f.alias or n for n, f in allowed.items()}
        fields = {k: v for k, v in fields.items() if k in aliases}
        extra: dict[str, Any] = {
            "clone_url": self.clone_url(r.owner, r.name),
            "git_url": f"git://127.0.0.1/{r.owner}/{r.name}.git",
            "ssh_url": f"git@127.0.0.1:{r.owner}/{r.name}.git",
            "svn_url": f"{self.web_url}/{r.owner}/{r.name}",
            "homepage": None,
            "language": None,
            "mirror_url": None,
            "archived": False,
            "disabled": False,
            "is_template": False,
            "size": 1,
            "permissions": {"admin": False, "maintain": False, "push": True, "triage": False, "pull": True},
        }
        for k, v in extra.items():
            if k in aliases:
                fields[k] = v
        return example(model, **fields)

    def _commit_url(self, r: RepoState, sha: str) -> dict[str, str]:
        return {
            "sha": sha,
            "url": f"{self.api_url}/repos/{r.owner}/{r.name}/git/commits/{sha}",
            "html_url": f"{self.web_url}/{r.owner}/{r.name}/commit/{sha}",
        }

    def _git_commit_obj(self, r: RepoState, sha: str) -> dict[str, Any]:
        c = _parse_commit(r.path, sha)
        return example(
            "GitCommit",
            sha=sha,
            node_id=base64.b64encode(f"06:Commit{r.id}:{sha}".encode()).decode(),
            url=f"{self.api_url}/repos/{r.owner}/{r.name}/git/commits/{sha}",
            html_url=f"{self.web_url}/{r.owner}/{r.name}/commit/{sha}",
            author=c["author"],
            committer=c["committer"],
            message=c["message"],
            tree={"sha": c["tree"], "url": f"{self.api_url}/repos/{r.owner}/{r.name}/git/trees/{c['tree']}"},
            parents=[self._commit_url(r, p) for p in c["parents"]],
            verification={
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        )

    def _commit_obj(self, r: RepoState, sha: str) -> dict[str, Any]:
        """The `Commit` model (repos API), as in compare results."""
        c = _parse_commit(r.path, sha)
        api = f"{self.api_url}/repos/{r.owner}/{r.name}"
        return example(
            "Commit",
            url=f"{api}/commits/{sha}",
            sha=sha,
            node_id=base64.b64encode(f"06:Commit{r.id}:{sha}".encode()).decode(),
            html_url=f"{self.web_url}/{r.owner}/{r.name}/commit/{sha}",
            comments_url=f"{api}/commits/{sha}/comments",
            commit={
                "url": f"{api}/git/commits/{sha}",
                "author": c["author"],
                "committer": c["committer"],
                "message": c["message"],
                "comment_count": 0,
                "tree": {"sha": c["tree"], "url": f"{api}/git/trees/{c['tree']}"},
                "verification": {
                    "verified": False,
                    "reason": "unsigned",
                    "signature": None,
                    "payload": None,
                    "verified_at": None,
                },
            },
            author=None,
            committer=None,
            parents=[self._commit_url(r, p) for p in c["parents"]],
        )

    def _ref_obj(self, r: RepoState, fullref: str, sha: str) -> dict[str, Any]:
        kind = _object_type(r.path, sha) or "commit"
        return example(
            "GitRef",
            ref=fullref,
            node_id=base64.b64encode(f"03:Ref{r.id}:{fullref}".encode()).decode(),
            url=f"{self.api_url}/repos/{r.owner}/{r.name}/git/{fullref}",
            object={
                "type": kind,
                "sha": sha,
                "url": f"{self.api_url}/repos/{r.owner}/{r.name}/git/{kind}s/{sha}",
            },
        )

    def _tree_obj(self, r: RepoState, sha: str, recursive: bool = False) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{r.owner}/{r.name}"
        items = []
        for it in _ls_tree(r.path, sha, recursive):
            item = {"path": it["path"], "mode": it["mode"], "type": it["type"], "sha": it["sha"]}
            if it["type"] == "blob":
                item["size"] = it["size"]
                item["url"] = f"{api}/git/blobs/{it['sha']}"
            elif it["type"] == "tree":
                item["url"] = f"{api}/git/trees/{it['sha']}"
            items.append(item)
        return example("GitTree", sha=sha, url=f"{api}/git/trees/{sha}", truncated=False, tree=items)

    # handlers: app ------------------------------------------------------------------------------

    def _installation_obj(self, owner: str) -> dict[str, Any]:
        iid = self._installation_for(owner)
        return example(
            "Installation",
            id=iid,
            account=self._user(owner),
            repository_selection="all",
            access_tokens_url=f"{self.api_url}/app/installations/{iid}/access_tokens",
            repositories_url=f"{self.api_url}/installation/repositories",
            html_url=f"{self.web_url}/organizations/{owner}/settings/installations/{iid}",
            app_id=self.app_id,
            app_slug=self.app_slug,
            target_id=self._user(owner)["id"],
            target_type="Organization",
            permissions=dict(APP_PERMISSIONS),
            events=["check_run", "pull_request"],
            created_at="2026-01-01T00:00:00Z",
            updated_at="2026-01-01T00:00:00Z",
            single_file_name=None,
            suspended_by=None,
            suspended_at=None,
        )

    async def _h_app(self, request: web.Request, r: Any, body: Any, auth: Any) -> Any:
        return example(
            "Integration",
            id=self.app_id,
            slug=self.app_slug,
            name=self.app_slug,
            owner=self._user(self.owner),
            permissions=dict(APP_PERMISSIONS),
            events=["check_run", "pull_request"],
            created_at="2026-01-01T00:00:00Z",
            updated_at="2026-01-01T00:00:00Z",
        )

    async def _h_repo_installation(
        self, request: web.Request, r: Any, body: Any, auth: Any, owner: str, repo: str
    ) -> Any:
        state = self._repo(owner, repo)
        if state is None or not state.installed:
            raise _not_found()
        return self._installation_obj(state.owner)

    async def _h_access_token(self, request: web.Request, r: Any, body: Any, auth: Any, iid: str) -> Any:
        with self._lock:
            owner = next((o for o, i in self._installations.items() if i == int(iid)), None)
        if owner is None:
            raise _not_found()
        body = body or {}
        if not isinstance(body, dict):
            raise _unprocessable("Invalid request")
        names = body.get("repositories")
        ids = body.get("repository_ids")
        repos: set[str] | None = None
        with self._lock:
            mine = [s for (o, _), s in self._repos.items() if o == owner and s.installed]
        if names is not None or ids is not None:
            repos = set()
            for n in names or []:
                s = next((s for s in mine if s.name.lower() == str(n).lower()), None)
                if s is None:
                    raise _unprocessable(
                        "There is at least one repository that does not exist or is not accessible to "
                        "the parent installation."
                    )
                repos.add(s.name.lower())
            for i in ids or []:
                s = next((s for s in mine if s.id == i), None)
                if s is None:
                    raise _unprocessable(
                        "There is at least one repository that does not exist or is not accessible to "
                        "the parent installation."
                    )
                repos.add(s.name.lower())
        perms = body.get("permissions")
        if perms is None:
            perms = dict(APP_PERMISSIONS)
        if not isinstance(perms, dict):
            raise _unprocessable("Invalid request: permissions must be an object")
        for p, lvl in perms.items():
            have = APP_PERMISSIONS.get(p)
            if have is None or lvl not in ("read", "write") or (lvl == "write" and have != "write"):
                raise _unprocessable("The permissions requested are not granted to this installation.")
        perms = {"metadata": "read", **perms}
        now = utcnow()
        token = IssuedToken(
            id=self._next_id(),
            token="ghs_" + secrets.token_urlsafe(27).replace("-", "a").replace("_", "b")[:36],
            owner=next(s.owner for s in mine) if mine else owner,
            installation_id=int(iid),
            repositories=frozenset(repos) if repos is not None else None,
            permissions=dict(perms),
            created_at=now,
            expires_at=now + dt.timedelta(seconds=self.token_ttl_s),
        )
        with self._lock:
            self._tokens[token.token] = token
        out: dict[str, Any] = {
            "token": token.token,
            "expires_at": iso(token.expires_at),
            "permissions": dict(perms),
            "repository_selection": "all" if repos is None else "selected",
        }
        if repos is not None:
            out["repositories"] = [self._repo_obj("Repository", s) for s in mine if s.name.lower() in repos]
        return 201, example("InstallationToken", **out)

    async def _h_revoke(self, request: web.Request, r: Any, body: Any, auth: IssuedToken) -> Any:
        with self._lock:
            auth.revoked = True
        return 204, None

    # handlers: repository and git data -------------------------------------------------------

    async def _h_repo(self, request: web.Request, r: RepoState, body: Any, auth: Any, **_: str) -> Any:
        return self._repo_obj("FullRepository", r)

    async def _h_get_ref(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, ref: str, **_: str
    ) -> Any:
        fullref = "refs/" + ref.removeprefix("refs/")
        if not ref.startswith(("heads/", "tags/", "refs/")):
            raise _not_found()
        sha = await asyncio.to_thread(_ref_sha, r.path, fullref) if _valid_refname(fullref) else None
        if sha is None or not _git_ok(r.path, "show-ref", "--verify", "--quiet", fullref):
            raise _not_found()
        return self._ref_obj(r, fullref, sha)

    async def _h_matching_refs(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, ref: str, **_: str
    ) -> Any:
        prefix = "refs/" + ref.removeprefix("refs/")
        out = git(r.path, "for-each-ref", "--format=%(refname) %(objectname)", "refs/").decode()
        refs = [line.split(" ") for line in out.splitlines() if line.startswith(prefix)]
        return [self._ref_obj(r, name, sha) for name, sha in refs]

    async def _h_create_ref(self, request: web.Request, r: RepoState, body: Any, auth: Any, **_: str) -> Any:
        if not isinstance(body, dict):
            raise _unprocessable("Invalid request")
        ref, sha = body.get("ref"), body.get("sha")
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise _unprocessable("Reference name is not fully qualified")
        if not _valid_refname(ref):
            raise _unprocessable("Reference name is invalid")
        if not isinstance(sha, str) or _full_sha(r.path, sha) is None:
            raise _unprocessable("Object does not exist")
        sha = _full_sha(r.path, sha)
        assert sha is not None
        async with self._ref_lock(r):
            if _ref_sha(r.path, ref) is not None:
                raise _unprocessable("Reference already exists")
            try:
                await asyncio.to_thread(git, r.path, "update-ref", ref, sha, ZERO_SHA)
            except GitError:
                raise _unprocessable("Reference already exists") from None
        return 201, self._ref_obj(r, ref, sha)

    async def _h_update_ref(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, ref: str, **_: str
    ) -> Any:
        if not isinstance(body, dict):
            raise _unprocessable("Invalid request")
        fullref = "refs/" + ref.removeprefix("refs/")
        sha, force = body.get("sha"), bool(body.get("force", False))
        if not isinstance(sha, str) or not _SHA_RE.match(sha) or _object_type(r.path, sha) is None:
            raise _unprocessable("Object does not exist")
        async with self._ref_lock(r):
            old = _ref_sha(r.path, fullref) if _valid_refname(fullref) else None
            if old is None:
                raise _unprocessable("Reference does not exist")
            if not force and old != sha and not _git_ok(r.path, "merge-base", "--is-ancestor", old, sha):
                raise _unprocessable("Update is not a fast forward")
            try:
                await asyncio.to_thread(git, r.path, "update-ref", fullref, sha, old)
            except GitError:
                raise _unprocessable("Reference cannot be updated") from None
        return self._ref_obj(r, fullref, sha)

    async def _h_delete_ref(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, ref: str, **_: str
    ) -> Any:
        fullref = "refs/" + ref.removeprefix("refs/")
        async with self._ref_lock(r):
            old = _ref_sha(r.path, fullref) if _valid_refname(fullref) else None
            if old is None:
                raise _unprocessable("Reference does not exist")
            await asyncio.to_thread(git, r.path, "update-ref", "-d", fullref, old)
        return 204, None

    async def _h_get_commit(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, sha: str, **_: str
    ) -> Any:
        full = _full_sha(r.path, sha)
        if full is None or _object_type(r.path, full) != "commit":
            raise _not_found()
        return self._git_commit_obj(r, full)

    async def _h_create_commit(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, **_: str
    ) -> Any:
        if not isinstance(body, dict):
            raise _unprocessable("Invalid request")
        message, tree, parents = body.get("message"), body.get("tree"), body.get("parents", [])
        if not isinstance(message, str):
            raise _unprocessable("Invalid request: message is required")
        if not isinstance(tree, str) or _object_type(r.path, tree) != "tree":
            raise _unprocessable("Tree SHA does not exist")
        if not isinstance(parents, list):
            raise _unprocessable("Invalid request: parents must be an array")
        for p in parents:
            if not isinstance(p, str) or not _SHA_RE.match(p) or _object_type(r.path, p) != "commit":
                raise _unprocessable("Parent SHA does not exist or is not a commit object")
        author = body.get("author") or {
            "name": self.bot_login,
            "email": f"{self.app_id}+{self.bot_login}@users.noreply.fake-github.invalid",
        }
        committer = body.get("committer") or author
        env: dict[str, str] = {}
        for role, who in (("AUTHOR", author), ("COMMITTER", committer)):
            if not isinstance(who, dict) or not who.get("name") or not who.get("email"):
                raise _unprocessable(f"Invalid request: {role.lower()} needs name and email")
            env[f"GIT_{role}_NAME"] = str(who["name"])
            env[f"GIT_{role}_EMAIL"] = str(who["email"])
            date = _git_date(who.get("date"))
            if date:
                env[f"GIT_{role}_DATE"] = date
        full_tree = _full_sha(r.path, tree)
        assert full_tree is not None
        sha = await self._run(self._commit_tree, r.path, full_tree, parents, message, env)
        return 201, self._git_commit_obj(r, sha)

    async def _h_get_tree(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, sha: str, **_: str
    ) -> Any:
        if not _HEX_RE.match(sha):
            commit = _resolve_commitish(r.path, sha)
            sha = commit or ""
        full = _full_sha(r.path, sha, "tree")
        if full is None:
            raise _not_found()
        recursive = request.query.get("recursive", "") not in ("", "0", "false")
        return self._tree_obj(r, full, recursive)

    async def _h_create_tree(self, request: web.Request, r: RepoState, body: Any, auth: Any, **_: str) -> Any:
        if not isinstance(body, dict) or "tree" not in body:
            raise _unprocessable("Invalid request: tree is required")
        base = body.get("base_tree")
        sha = await self._run(build_tree, r.path, base, body["tree"])
        return 201, self._tree_obj(r, sha)

    async def _h_get_blob(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, sha: str, **_: str
    ) -> Any:
        if not _SHA_RE.match(sha) or _object_type(r.path, sha) != "blob":
            raise _not_found()
        data = git(r.path, "cat-file", "blob", sha)
        return example(
            "Blob",
            content=base64.encodebytes(data).decode(),
            encoding="base64",
            url=f"{self.api_url}/repos/{r.owner}/{r.name}/git/blobs/{sha}",
            sha=sha,
            size=len(data),
            node_id=base64.b64encode(f"04:Blob{r.id}:{sha}".encode()).decode(),
        )

    async def _h_create_blob(self, request: web.Request, r: RepoState, body: Any, auth: Any, **_: str) -> Any:
        if not isinstance(body, dict) or not isinstance(body.get("content"), str):
            raise _unprocessable("Invalid request: content is required")
        encoding = body.get("encoding", "utf-8")
        if encoding == "base64":
            try:
                data = base64.b64decode(body["content"], validate=False)
            except ValueError:
                raise _unprocessable("Invalid request: content is not valid Base64") from None
        elif encoding in ("utf-8", "utf8"):
            data = body["content"].encode("utf-8", errors="surrogatepass")
        else:
            raise _unprocessable(f"Invalid request: encoding {encoding!r} is not supported")
        (sha,) = await self._run(_hash_blobs, r.path, [data])
        return 201, example(
            "ShortBlob", url=f"{self.api_url}/repos/{r.owner}/{r.name}/git/blobs/{sha}", sha=sha
        )

    async def _h_compare(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, basehead: str, **_: str
    ) -> Any:
        sep = "..." if "..." in basehead else ".." if ".." in basehead else None
        if sep is None:
            raise _not_found()
        base_name, head_name = basehead.split(sep, 1)
        base = _resolve_commitish(r.path, base_name.split(":")[-1])
        head = _resolve_commitish(r.path, head_name.split(":")[-1])
        if base is None or head is None:
            raise _not_found()
        return await asyncio.to_thread(self._comparison, r, base, head, basehead)

    def _comparison(self, r: RepoState, base: str, head: str, basehead: str) -> dict[str, Any]:
        try:
            mb = git(r.path, "merge-base", base, head).decode().strip()
        except GitError:
            raise ApiError(404, f"No common ancestor between {base} and {head}.") from None
        ahead = git(r.path, "rev-list", "--reverse", f"{mb}..{head}").decode().split()
        behind = int(git(r.path, "rev-list", "--count", f"{mb}..{base}").decode().strip())
        status = (
            "identical"
            if not ahead and not behind
            else "ahead"
            if not behind
            else "behind"
            if not ahead
            else "diverged"
        )
        files = self._diff_entries(r, mb, head)
        web_repo = f"{self.web_url}/{r.owner}/{r.name}"
        return example(
            "CommitComparison",
            url=f"{self.api_url}/repos/{r.owner}/{r.name}/compare/{basehead}",
            html_url=f"{web_repo}/compare/{basehead}",
            permalink_url=f"{web_repo}/compare/{r.owner}:{base[:7]}...{r.owner}:{head[:7]}",
            diff_url=f"{web_repo}/compare/{basehead}.diff",
            patch_url=f"{web_repo}/compare/{basehead}.patch",
            base_commit=self._commit_obj(r, base),
            merge_base_commit=self._commit_obj(r, mb),
            status=status,
            ahead_by=len(ahead),
            behind_by=behind,
            total_commits=len(ahead),
            commits=[self._commit_obj(r, c) for c in ahead[:250]],
            files=files,
        )

    def _diff_entries(self, r: RepoState, a: str, b: str) -> list[dict[str, Any]]:
        raw = git(r.path, "diff", "--raw", "-z", "-M", "--no-abbrev", a, b).split(b"\0")
        num = git(r.path, "diff", "--numstat", "-z", "-M", a, b).split(b"\0")
        entries: list[dict[str, Any]] = []
        i = 0
        while i < len(raw) and raw[i]:
            meta = raw[i].decode()
            _om, _nm, osha, nsha, st = meta[1:].split(" ")
            code = st[0]
            if code in ("R", "C"):
                old, new = raw[i + 1].decode(errors="replace"), raw[i + 2].decode(errors="replace")
                i += 3
            else:
                old = new = raw[i + 1].decode(errors="replace")
                i += 2
            entries.append({"code": code, "old": old, "new": new, "osha": osha, "nsha": nsha})
        # numstat: "add\tdel\tpath\0" or, for renames, "add\tdel\t\0old\0new\0"
        stats: list[tuple[int, int]] = []
        j = 0
        while j < len(num) and num[j]:
            add, dele, rest = num[j].decode(errors="replace").split("\t", 2)
            stats.append((int(add) if add != "-" else 0, int(dele) if dele != "-" else 0))
            j += 3 if rest == "" else 1
        status_of = {
            "A": "added",
            "D": "removed",
            "M": "modified",
            "R": "renamed",
            "C": "copied",
            "T": "changed",
        }
        out = []
        web_repo = f"{self.web_url}/{r.owner}/{r.name}"
        for k, e in enumerate(entries):
            add, dele = stats[k] if k < len(stats) else (0, 0)
            sha = e["osha"] if e["code"] == "D" else e["nsha"]
            item: dict[str, Any] = {
                "sha": sha,
                "filename": e["new"],
                "status": status_of.get(e["code"], "modified"),
                "additions": add,
                "deletions": dele,
                "changes": add + dele,
                "blob_url": f"{web_repo}/blob/{b}/{e['new']}",
                "raw_url": f"{web_repo}/raw/{b}/{e['new']}",
                "contents_url": f"{self.api_url}/repos/{r.owner}/{r.name}/contents/{e['new']}?ref={b}",
            }
            if e["code"] in ("R", "C"):
                item["previous_filename"] = e["old"]
            out.append(example("DiffEntry", **item))
        return out

    # handlers: pulls ------------------------------------------------------------------------------

    def _pull_obj(self, model: str, r: RepoState, p: PullRecord) -> dict[str, Any]:
        api = f"{self.api_url}/repos/{r.owner}/{r.name}"
        web_pr = f"{self.web_url}/{r.owner}/{r.name}/pull/{p.number}"
        head_sha = _ref_sha(r.path, f"refs/heads/{p.head}") or ZERO_SHA
        base_sha = _ref_sha(r.path, f"refs/heads/{p.base}") or ZERO_SHA
        repo_obj = self._repo_obj("Repository", r)
        owner_user = self._user(r.owner)

        def side(ref: str, sha: str) -> dict[str, Any]:
            return {"label": f"{r.owner}:{ref}", "ref": ref, "repo": repo_obj, "sha": sha, "user": owner_user}

        fields: dict[str, Any] = {
            "url": f"{api}/pulls/{p.number}",
            "id": p.id,
            "node_id": base64.b64encode(f"011:PullRequest{p.id}".encode()).decode(),
            "html_url": web_pr,
            "diff_url": web_pr + ".diff",
            "patch_url": web_pr + ".patch",
            "issue_url": f"{api}/issues/{p.number}",
            "commits_url": f"{api}/pulls/{p.number}/commits",
            "review_comments_url": f"{api}/pulls/{p.number}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{api}/issues/{p.number}/comments",
            "statuses_url": f"{api}/statuses/{head_sha}",
            "number": p.number,
            "state": p.state,
            "locked": False,
            "title": p.title,
            "user": self._bot(),
            "body": p.body,
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": p.created_at,
            "updated_at": p.updated_at,
            "closed_at": None,
            "merged_at": None,
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": side(p.head, head_sha),
            "base": side(p.base, base_sha),
            "_links": {
                k: {"href": v}
                for k, v in {
                    "self": f"{api}/pulls/{p.number}",
                    "html": web_pr,
                    "issue": f"{api}/issues/{p.number}",
                    "comments": f"{api}/issues/{p.number}/comments",
                    "review_comments": f"{api}/pulls/{p.number}/comments",
                    "review_comment": f"{api}/pulls/comments{{/number}}",
                    "commits": f"{api}/pulls/{p.number}/commits",
                    "statuses": f"{api}/statuses/{head_sha}",
                }.items()
            },
            "author_association": "NONE",
            "auto_merge": None,
            "draft": p.draft,
        }
        if model == "PullRequest":
            commits = additions = deletions = changed = 0
            if head_sha != ZERO_SHA and base_sha != ZERO_SHA:
                with contextlib.suppress(GitError):
                    commits = int(git(r.path, "rev-list", "--count", f"{base_sha}..{head_sha}").decode())
                    for line in (
                        git(r.path, "diff", "--numstat", f"{base_sha}...{head_sha}").decode().splitlines()
                    ):
                        a, d, _ = line.split("\t", 2)
                        additions += int(a) if a != "-" else 0
                        deletions += int(d) if d != "-" else 0
                        changed += 1
            fields.update(
                merged=False,
                mergeable=None,
                rebaseable=None,
                mergeable_state="unknown",
                merged_by=None,
                comments=0,
                review_comments=0,
                maintainer_can_modify=False,
                commits=commits,
                additions=additions,
                deletions=deletions,
                changed_files=changed,
            )
        allowed = getattr(_models(), model).model_fields
        aliases = {f.alias or n for n, f in allowed.items()}
        return example(model, **{k: v for k, v in fields.items() if k in aliases})

    async def _h_list_pulls(self, request: web.Request, r: RepoState, body: Any, auth: Any, **_: str) -> Any:
        q = request.query
        state = q.get("state", "open")
        pulls = self.pulls(r.owner, r.name)
        if state != "all":
            pulls = [p for p in pulls if p.state == state]
        if "head" in q:
            owner, _, branch = q["head"].rpartition(":")
            pulls = [
                p for p in pulls if p.head == branch and (not owner or owner.lower() == p.head_owner.lower())
            ]
        if "base" in q:
            pulls = [p for p in pulls if p.base == q["base"]]
        if q.get("direction", "desc") == "desc":
            pulls = pulls[::-1]
        items = [self._pull_obj("PullRequestSimple", r, p) for p in pulls]
        page, link = _paginate(request, items, default_per_page=30)
        return 200, page, link

    async def _h_get_pull(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, number: str, **_: str
    ) -> Any:
        p = next((p for p in self.pulls(r.owner, r.name) if p.number == int(number)), None)
        if p is None:
            raise _not_found()
        return self._pull_obj("PullRequest", r, p)

    async def _h_create_pull(self, request: web.Request, r: RepoState, body: Any, auth: Any, **_: str) -> Any:
        if not isinstance(body, dict):
            raise _unprocessable("Invalid request")
        title, head, base = body.get("title"), body.get("head"), body.get("base")
        if not isinstance(head, str) or not isinstance(base, str):
            raise _unprocessable("Invalid request: head and base are required")
        if not isinstance(title, str) or not title.strip():
            raise _unprocessable(
                "Validation Failed", [{"resource": "PullRequest", "field": "title", "code": "missing_field"}]
            )
        head_owner, _, head_branch = head.rpartition(":")
        head_owner = head_owner or r.owner
        if head_owner.lower() != r.owner.lower() or _ref_sha(r.path, f"refs/heads/{head_branch}") is None:
            raise _unprocessable(
                "Validation Failed", [{"resource": "PullRequest", "field": "head", "code": "invalid"}]
            )
        if _ref_sha(r.path, f"refs/heads/{base}") is None:
            raise _unprocessable(
                "Validation Failed", [{"resource": "PullRequest", "field": "base", "code": "invalid"}]
            )
        key = (r.owner.lower(), r.name.lower())
        with self._lock:
            for p in self._pulls.get(key, []):
                if p.state == "open" and p.head == head_branch and p.base == base:
                    raise _unprocessable(
                        "Validation Failed",
                        [
                            {
                                "resource": "PullRequest",
                                "code": "custom",
                                "message": f"A pull request already exists for {r.owner}:{head_branch}.",
                            }
                        ],
                    )
        ahead = int(
            git(r.path, "rev-list", "--count", f"refs/heads/{base}..refs/heads/{head_branch}").decode()
        )
        if ahead == 0:
            raise _unprocessable(
                "Validation Failed",
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"No commits between {base} and {head_branch}",
                    }
                ],
            )
        now = iso(utcnow())
        with self._lock:
            existing = self._pulls.setdefault(key, [])
            p = PullRecord(
                number=len(existing) + 1,
                id=self._next_id(),
                owner=r.owner,
                name=r.name,
                title=title,
                body=body.get("body"),
                head=head_branch,
                head_owner=head_owner,
                base=base,
                draft=bool(body.get("draft", False)),
                state="open",
                created_at=now,
                updated_at=now,
            )
            existing.append(p)
        return (
            201,
            self._pull_obj("PullRequest", r, p),
            {"Location": f"{self.api_url}/repos/{r.owner}/{r.name}/pulls/{p.number}"},
        )

    # handlers: checks -----------------------------------------------------------------------------

    def _run_id(self, r: RepoState, sha: str, name: str, kind: str) -> int:
        key = (r.full_name.lower(), sha, name, kind)
        with self._lock:
            if key not in self._run_ids:
                self._run_ids[key] = self._next_id()
            return self._run_ids[key]

    def _seen_at(self, *key: Any) -> str:
        """When the fake first showed `key` (a run reaching a status, a status in a state)."""
        with self._lock:
            return self._first_seen.setdefault(key, iso(utcnow()))

    def _check_run_obj(self, r: RepoState, sha: str, run: dict[str, Any]) -> dict[str, Any]:
        rid = self._run_id(r, sha, run["name"], "check")
        status = run.get("status", "completed")
        conclusion = run.get("conclusion", "success" if status == "completed" else None)
        started = None if status == "queued" else self._seen_at(rid, "started")
        completed = self._seen_at(rid, "completed", conclusion) if status == "completed" else None
        api = f"{self.api_url}/repos/{r.owner}/{r.name}"
        html = f"{self.web_url}/{r.owner}/{r.name}/runs/{rid}"
        output = {"title": None, "summary": None, "text": None, **(run.get("output") or {})}
        output.update(annotations_count=0, annotations_url=f"{api}/check-runs/{rid}/annotations")
        return example(
            "CheckRun",
            id=rid,
            head_sha=sha,
            node_id=base64.b64encode(f"08:CheckRun{rid}".encode()).decode(),
            external_id=str(rid),
            url=f"{api}/check-runs/{rid}",
            html_url=html,
            details_url=run.get("details_url", html),
            status=status,
            conclusion=conclusion,
            started_at=run.get("started_at", started),
            completed_at=run.get("completed_at", completed),
            output=output,
            name=run["name"],
            check_suite={"id": self._run_id(r, sha, "suite", "suite")},
            app=None,
            pull_requests=[],
        )

    async def _h_check_runs(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, ref: str, **_: str
    ) -> Any:
        sha = _resolve_commitish(r.path, ref)
        if sha is None:
            raise _unprocessable(f"No commit found for SHA: {ref}")
        with self._lock:
            script = self._check_scripts.get((r.owner.lower(), r.name.lower(), sha))
        runs = script.current() if script else []
        q = request.query
        if "check_name" in q:
            runs = [x for x in runs if x["name"] == q["check_name"]]
        if "status" in q:
            runs = [x for x in runs if x.get("status", "completed") == q["status"]]
        items = [self._check_run_obj(r, sha, x) for x in runs]
        page, link = _paginate(request, items, default_per_page=30)
        data = example(
            "ReposOwnerRepoCommitsRefCheckRunsGetResponse200", total_count=len(items), check_runs=page
        )
        return 200, data, link

    async def _h_combined_status(
        self, request: web.Request, r: RepoState, body: Any, auth: Any, ref: str, **_: str
    ) -> Any:
        sha = _resolve_commitish(r.path, ref)
        if sha is None:
            raise _unprocessable(f"No commit found for SHA: {ref}")
        with self._lock:
            script = self._status_scripts.get((r.owner.lower(), r.name.lower(), sha))
        statuses = script.current() if script else []
        api = f"{self.api_url}/repos/{r.owner}/{r.name}"
        items = []
        for s in statuses:
            sid = self._run_id(r, sha, s["context"], "status")
            items.append(
                example(
                    "SimpleCommitStatus",
                    description=s.get("description"),
                    id=sid,
                    node_id=base64.b64encode(f"013:StatusContext{sid}".encode()).decode(),
                    state=s["state"],
                    context=s["context"],
                    target_url=s.get("target_url"),
                    avatar_url=None,
                    url=f"{api}/statuses/{sha}",
                    created_at=self._seen_at(sid, "created"),
                    updated_at=self._seen_at(sid, "state", s["state"]),
                )
            )
        states = [s["state"] for s in statuses]
        combined = (
            "failure"
            if any(s in ("failure", "error") for s in states)
            else "pending"
            if not states or "pending" in states
            else "success"
        )
        page, link = _paginate(request, items, default_per_page=30)
        data = example(
            "CombinedCommitStatus",
            state=combined,
            statuses=page,
            sha=sha,
            total_count=len(items),
            repository=self._repo_obj("MinimalRepository", r),
            commit_url=f"{api}/commits/{sha}",
            url=f"{api}/commits/{sha}/status",
        )
        return 200, data, link

    # --- git smart HTTP ------------------------------------------------------------------------

    _GIT_RE = re.compile(
        rf"^/(?P<owner>{_SEG})/(?P<repo>{_SEG}?)(?:\.git)?/(?P<rest>info/refs|git-upload-pack|git-receive-pack)$"
    )

    async def _git_http(self, request: web.Request, record: RequestRecord) -> web.StreamResponse:
        m = self._GIT_RE.match(request.path)
        if m is None:
            return web.Response(status=404, text="Not Found\n")
        owner, name, rest = m.group("owner"), m.group("repo"), m.group("rest")
        service = request.query.get("service", "") if rest == "info/refs" else rest
        kind, detail = self._parse_auth(request)
        record.auth = kind
        challenge = {"WWW-Authenticate": 'Basic realm="GitHub"'}
        tok: IssuedToken | None = None
        if kind == "basic":
            user, password = detail
            with self._lock:
                tok = self._tokens.get(password)
            if tok is not None:
                record.token_id = tok.id
            if user != "x-access-token" or tok is None or not tok.valid:
                return web.Response(status=401, text="Invalid username or password.\n", headers=challenge)
        elif kind == "installation":  # not how git authenticates to GitHub, but harmless
            tok = detail
            record.token_id = tok.id
        else:
            return web.Response(status=401, text="Authentication required.\n", headers=challenge)
        if service == "git-receive-pack":
            return web.Response(status=403, text="Write access to repository not granted.\n")
        if service != "git-upload-pack":
            return web.Response(status=403, text="Smart HTTP only; dumb protocol refused.\n")
        r = self._repo(owner, name)
        if r is None or not tok.covers(r.owner, r.name) or not tok.has("contents", "read"):
            return web.Response(status=404, text="Repository not found.\n")
        return await self._http_backend(request, r, rest)

    async def _http_backend(self, request: web.Request, r: RepoState, rest: str) -> web.StreamResponse:
        body = await request.read() if request.method == "POST" else b""
        env = _git_env(
            {
                "GIT_PROJECT_ROOT": str(self.repos_root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": f"/{r.path.relative_to(self.repos_root).as_posix()}/{rest}",
                "QUERY_STRING": request.query_string,
                "REQUEST_METHOD": request.method,
                "CONTENT_TYPE": request.headers.get("Content-Type", ""),
                "REMOTE_USER": "x-access-token",
                "REMOTE_ADDR": request.remote or "127.0.0.1",
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
        )
        if request.method == "POST":
            env["CONTENT_LENGTH"] = str(len(body))
        if enc := request.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = enc
        if proto := request.headers.get("Git-Protocol"):
            env["HTTP_GIT_PROTOCOL"] = proto
        proc = await asyncio.create_subprocess_exec(
            "git",
            "http-backend",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        assert proc.stdin and proc.stdout and proc.stderr

        async def feed() -> None:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                proc.stdin.write(body)  # type: ignore[union-attr]
                await proc.stdin.drain()  # type: ignore[union-attr]
            proc.stdin.close()  # type: ignore[union-attr]

        feeder = asyncio.create_task(feed())
        stderr_task = asyncio.create_task(proc.stderr.read())
        head = b""
        while b"\r\n\r\n" not in head and b"\n\n" not in head:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                break
            head += chunk
        sep = b"\r\n\r\n" if b"\r\n\r\n" in head else b"\n\n"
        header_block, _, first = head.partition(sep)
        status = 200
        headers: dict[str, str] = {}
        for line in header_block.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            if k.lower() == "status":
                status = int(v.strip().split()[0])
            elif k.strip():
                headers[k.strip()] = v.strip()
        resp = web.StreamResponse(status=status, headers=headers)
        await resp.prepare(request)
        try:
            if first:
                await resp.write(first)
            while chunk := await proc.stdout.read(65536):
                await resp.write(chunk)
            await resp.write_eof()
        finally:
            await feeder
            err = await stderr_task
            code = await proc.wait()
            if code != 0:
                with self._lock:
                    self.errors.append(
                        f"git http-backend {rest} exited {code}: {err.decode(errors='replace')}"
                    )
        return resp


def _valid_refname(fullref: str) -> bool:
    res = subprocess.run(["git", "check-ref-format", fullref], capture_output=True, check=False)
    return res.returncode == 0


def _paginate(
    request: web.Request, items: list[Any], *, default_per_page: int
) -> tuple[list[Any], dict[str, str]]:
    """GitHub page/per_page slicing with a `Link` header (absolute URLs, as GitHub sends)."""
    try:
        per_page = max(1, min(100, int(request.query.get("per_page", default_per_page))))
        page = max(1, int(request.query.get("page", 1)))
    except ValueError:
        raise _unprocessable("Invalid page or per_page") from None
    last = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    base = URL(str(request.url))

    def at(n: int) -> str:
        return str(base.update_query({"per_page": str(per_page), "page": str(n)}))

    links = []
    if page > 1:
        links.append(f'<{at(page - 1)}>; rel="prev"')
    if page < last:
        links.append(f'<{at(page + 1)}>; rel="next"')
        links.append(f'<{at(last)}>; rel="last"')
    if page > 1:
        links.append(f'<{at(1)}>; rel="first"')
    return chunk, ({"Link": ", ".join(links)} if links else {})


def github_env(fake: FakeGitHub) -> dict[str, str]:
    """The service's environment for talking to `fake`."""
    return {
        "DOCKYARD_GITHUB_API_URL": fake.api_url,
        "DOCKYARD_GITHUB_WEB_URL": fake.web_url,
        "DOCKYARD_GITHUB_APP_ID": str(fake.app_id),
        "DOCKYARD_GITHUB_APP_PRIVATE_KEY": fake.private_key_pem,
    }
