"""Cloning a repository on the service side (the sandbox never has network) into a tar for the box.

git runs as an async subprocess with a deadline, no prompts, no system or user config, only the
allowed URL schemes, no redirects, and a neutral identity (`gitproc.base_env`). Where a clone may
come from is decided before (`service.clone_policy`). After the fetch and BEFORE the checkout the
fetched tree is read (`git ls-tree`, streamed) and refused when it breaks a cap: total size,
entries, entries in one folder, depth, name and path length, or a `.git` path component in any
case; the fetch itself is stopped once its objects outgrow the size cap. Submodules are not
fetched: a gitlink checks out as an empty folder. The checkout keeps no remote URL (so no
credential or mirror address lands in `/workspace/.git/config`). The tar is built in a worker
thread; symlinks are stored as links, never followed, so a planted link cannot pull a host file
into the box.
"""

from __future__ import annotations

import asyncio
import os
import re
import tarfile
import tempfile
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from service.clone_policy import redact_url
from service.errors import CloneFailed, InvalidRequest, RefNotFound, RepoNotFound, RepoTooLarge
from service.gitproc import base_env, run_git, stream_git
from service.lint.detect import matches
from service.logging import get_logger
from service.settings import LanguageSpec, Settings

log = get_logger(__name__)
T = TypeVar("T")

SHA_RE = re.compile(r"^[0-9a-f]{7,64}$")
MIB = 1024 * 1024
NAME_MAX = 255  # bytes per path component (the host's and the box's filesystems)
PATH_MAX = 4096  # bytes per path
SIZE_POLL_S = 0.25
_GIT_CONFIG = [
    "-c",
    "advice.detachedHead=false",
    "-c",
    "init.defaultBranch=main",
    "-c",
    "protocol.version=2",
    "-c",
    "core.symlinks=true",
    "-c",
    "http.followRedirects=false",
    "-c",
    "core.protectNTFS=true",
    "-c",
    "core.protectHFS=true",
]
_WORK_RE = re.compile(r"^(job_[0-9a-f]+)-")


@dataclass(frozen=True)
class Checkout:
    path: Path
    base_sha: str
    ref: str | None


@dataclass(frozen=True)
class CloneCaps:
    """What a clone may hold, checked before anything is checked out."""

    max_bytes: int
    bytes_setting: str  # what to raise when the size cap is hit
    max_depth: int
    max_entries: int
    max_dir_entries: int

    @classmethod
    def for_job(cls, settings: Settings, disk_mb: int) -> CloneCaps:
        if settings.max_clone_mb is not None and settings.max_clone_mb < disk_mb:
            mb, setting = settings.max_clone_mb, "DOCKYARD_MAX_CLONE_MB"
        else:
            mb, setting = disk_mb, "the job's limits.disk_mb (up to the ops maximum)"
        return cls(
            max_bytes=mb * MIB,
            bytes_setting=setting,
            max_depth=settings.max_tree_depth,
            max_entries=settings.max_tree_entries,
            max_dir_entries=settings.max_dir_entries,
        )


def _shown(path: bytes) -> str:
    text = path.decode("utf-8", "replace")
    return text if len(text) <= 300 else text[:300] + "…"


class TreeCheck:
    """Reads `git ls-tree -r -t -l -z` output chunk by chunk; raises at the first broken cap."""

    def __init__(self, caps: CloneCaps):
        self.caps = caps
        self.entries = 0
        self.bytes = 0
        self._rest = b""
        self._dirs: dict[bytes, int] = {}

    def feed(self, chunk: bytes) -> None:
        *records, self._rest = (self._rest + chunk).split(b"\0")
        for record in records:
            if record:
                self._entry(record)
        if len(self._rest) > PATH_MAX + 256:  # one record longer than any allowed path
            self._too_large(
                "path_length",
                f"a path is longer than {PATH_MAX} bytes",
                PATH_MAX,
                None,
                self._rest.partition(b"\t")[2][:400],
            )

    def finish(self) -> None:
        if self._rest:
            self._entry(self._rest)
            self._rest = b""

    def _too_large(self, cap: str, what: str, limit: int, setting: str | None, path: bytes | None) -> None:
        raise_ = f"; ops may raise {setting}" if setting else " (a filesystem limit)"
        details: dict[str, object] = {"cap": cap, "limit": limit, "setting": setting}
        if path is not None:
            details["path"] = _shown(path)
        raise RepoTooLarge(f"the repository cannot be checked out: {what}{raise_}", details)

    def _entry(self, record: bytes) -> None:
        meta, tab, path = record.partition(b"\t")
        fields = meta.split()
        if not tab or len(fields) != 4:
            raise CloneFailed("git listed the fetched tree in a form dockyard does not know", {})
        _mode, kind, _sha, size = fields
        caps = self.caps
        self.entries += 1
        if self.entries > caps.max_entries:
            self._too_large(
                "tree_entries",
                f"it holds more than {caps.max_entries} files and folders",
                caps.max_entries,
                "DOCKYARD_MAX_TREE_ENTRIES",
                None,
            )
        if len(path) > PATH_MAX:
            self._too_large("path_length", f"a path is longer than {PATH_MAX} bytes", PATH_MAX, None, path)
        names = path.split(b"/")
        for name in names:
            if len(name) > NAME_MAX:
                self._too_large(
                    "name_length", f"a name is longer than {NAME_MAX} bytes", NAME_MAX, None, path
                )
            if name.lower() == b".git" or name in (b"", b".", b".."):
                raise InvalidRequest(
                    "the repository holds a path dockyard refuses to check out "
                    "(a '.git' component in any case, '.' or '..')",
                    {"reason": "forbidden_path", "path": _shown(path)},
                )
        if len(names) > caps.max_depth:
            self._too_large(
                "tree_depth",
                f"a path is more than {caps.max_depth} folders deep",
                caps.max_depth,
                "DOCKYARD_MAX_TREE_DEPTH",
                path,
            )
        parent = path.rpartition(b"/")[0]
        count = self._dirs.get(parent, 0) + 1
        self._dirs[parent] = count
        if count > caps.max_dir_entries:
            self._too_large(
                "dir_entries",
                f"a folder holds more than {caps.max_dir_entries} entries",
                caps.max_dir_entries,
                "DOCKYARD_MAX_DIR_ENTRIES",
                parent or b".",
            )
        if kind == b"blob" and size.isdigit():
            self.bytes += int(size)
            if self.bytes > caps.max_bytes:
                self._too_large(
                    "size",
                    f"its files take more than {caps.max_bytes // MIB} MiB",
                    caps.max_bytes // MIB,
                    caps.bytes_setting,
                    None,
                )


class GitRunner:
    """Runs git with a clean environment and a deadline."""

    def __init__(self, workdir: Path, env: Mapping[str, str], deadline: float, redact: list[str]):
        self._workdir = workdir
        self._env = dict(env)
        self._deadline = deadline
        self._redact = sorted((r for r in redact if r), key=len, reverse=True)

    def _clean(self, text: str) -> str:
        for secret in self._redact:
            text = text.replace(secret, "***")
        return text

    def _remaining(self) -> float:
        remaining = self._deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise _timeout()
        return remaining

    async def __call__(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        try:
            out = await run_git(
                [*_GIT_CONFIG, *args], cwd=self._workdir, env=self._env, timeout_s=self._remaining()
            )
        except TimeoutError as e:
            raise _timeout() from e
        stderr = self._clean(out.stderr)
        if check and out.code != 0:
            raise _GitError(out.code, stderr)
        return out.code, out.stdout, stderr

    async def stream(self, *args: str, check: TreeCheck) -> None:
        try:
            out = await stream_git(
                [*_GIT_CONFIG, *args],
                cwd=self._workdir,
                env=self._env,
                timeout_s=self._remaining(),
                sink=check.feed,
            )
        except TimeoutError as e:
            raise _timeout() from e
        if out.code != 0:
            raise _GitError(out.code, self._clean(out.stderr))
        check.finish()


def _timeout() -> CloneFailed:
    return CloneFailed("the clone took longer than the configured clone timeout", {"reason": "timeout"})


class _GitError(Exception):
    def __init__(self, code: int, stderr: str):
        super().__init__(stderr)
        self.code = code
        self.stderr = stderr


def _git_env(home: Path, allowed_schemes: frozenset[str], extra: Mapping[str, str] | None) -> dict[str, str]:
    env = base_env(home)
    env.update(
        {
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_ALLOW_PROTOCOL": ":".join(sorted(allowed_schemes)),
        }
    )
    env.update(extra or {})
    return env


def _reason(stderr: str) -> str:
    low = stderr.lower()
    if "couldn't find remote ref" in low or "not our ref" in low or "unknown revision" in low:
        return "ref_not_found"
    if "does not appear to be a git repository" in low or "repository not found" in low or "not found" in low:
        return "repo_not_found"
    if "authentication" in low or "403" in low or "401" in low or "could not read username" in low:
        return "auth_failed"
    return "git_error"


def _last_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "no output"


def _objects_size(git_dir: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(git_dir / "objects"):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue  # a temporary file renamed meanwhile
    return total


async def _size_capped(step: Awaitable[T], git_dir: Path, caps: CloneCaps) -> T:
    """Run `step` (a fetch) while its objects stay under the size cap; past it, stop it."""

    async def watch() -> int:
        while True:
            await asyncio.sleep(SIZE_POLL_S)
            size = await asyncio.to_thread(_objects_size, git_dir)
            if size > caps.max_bytes:
                return size

    task = asyncio.ensure_future(step)
    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, watcher):
            t.cancel()  # no-op when done
        await asyncio.gather(task, watcher, return_exceptions=True)
    if task in done:
        return task.result()  # the fetch's own outcome (its error too)
    raise RepoTooLarge(
        f"the repository cannot be checked out: the fetch took more than {caps.max_bytes // MIB} MiB; "
        f"ops may raise {caps.bytes_setting}",
        {"cap": "fetch_size", "limit": caps.max_bytes // MIB, "setting": caps.bytes_setting},
    )


async def clone(
    url: str,
    ref: str | None,
    dest: Path,
    *,
    timeout_s: float,
    allowed_schemes: frozenset[str],
    caps: CloneCaps,
    display: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    secrets: list[str] | None = None,
) -> Checkout:
    """Fetch `ref` (or the default branch) of `url` into `dest`, check its tree against `caps`,
    and check it out, detached.

    `extra_env` reaches git only (e.g. an auth header as GIT_CONFIG_*), and `secrets` are
    scrubbed from every message.
    """
    name = display or redact_url(url)
    home = dest.parent / (dest.name + ".home")
    await asyncio.to_thread(dest.mkdir, parents=True)
    await asyncio.to_thread(home.mkdir)
    loop = asyncio.get_running_loop()
    git = GitRunner(dest, _git_env(home, allowed_schemes, extra_env), loop.time() + timeout_s, secrets or [])
    git_dir = dest / ".git"
    try:
        await git("init", "-q")
        target = ref or "HEAD"
        try:
            await _size_capped(
                git("fetch", "-q", "--no-tags", "--depth", "1", "--", url, target), git_dir, caps
            )
        except _GitError as first:
            if not (ref and SHA_RE.match(ref)):
                raise first
            # Not every server serves a bare sha (or a short one): fetch everything and look it up.
            await _size_capped(
                git("fetch", "-q", "--tags", "--", url, "+refs/heads/*:refs/remotes/origin/*"), git_dir, caps
            )
            code, _, _ = await git("rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
            if code != 0:
                raise _GitError(128, f"fatal: couldn't find remote ref {ref}") from first
            await git("update-ref", "FETCH_HEAD", f"{ref}^{{commit}}")
        await git.stream(
            "ls-tree", "-r", "-t", "-l", "-z", "--full-tree", "FETCH_HEAD", check=TreeCheck(caps)
        )
        await git("checkout", "-q", "--detach", "FETCH_HEAD")
        _, sha, _ = await git("rev-parse", "HEAD")
        await asyncio.to_thread((git_dir / "FETCH_HEAD").unlink, missing_ok=True)
    except _GitError as e:
        log.info("clone_failed", repo=name, git=_last_line(e.stderr))
        if "invalid path '" in e.stderr:
            raise InvalidRequest(
                "the repository holds a path git refuses to check out", {"reason": "forbidden_path"}
            ) from e
        reason = _reason(e.stderr)
        what = {
            "ref_not_found": f"ref {ref!r} was not found in {name}",
            "repo_not_found": f"{name} is not a reachable git repository",
            "auth_failed": f"access to {name} was refused",
        }.get(reason, f"cloning {name} failed")
        # git's own words stay in the service log: they may carry what the remote said.
        details = {"repo": name, "ref": ref, "reason": reason}
        if reason == "ref_not_found":  # the caller named a ref the repository does not have
            raise RefNotFound(what, details) from e
        if reason == "repo_not_found":
            raise RepoNotFound(what, details) from e
        raise CloneFailed(what, details) from e
    finally:
        await remove_tree(home)
    return Checkout(dest, sha.strip(), ref)


# --- <state>/work -------------------------------------------------------------------------------


def work_dir_for(work_root: Path, job_id: str) -> Path:
    """A fresh folder for one job's clone (named after the job, so a sweep can tell whose it is)."""
    return Path(tempfile.mkdtemp(prefix=f"{job_id}-", dir=work_root))


async def remove_tree(path: Path) -> None:
    """Remove a folder whatever its depth or modes (`rm -rf`: Python's rmtree recurses and gives up
    past ~1,000 levels). Never follows links; a failure is logged, not raised."""
    proc = await asyncio.create_subprocess_exec(
        "rm",
        "-rf",
        "--one-file-system",
        "--",
        str(path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    if proc.returncode:
        log.warning("remove_failed", path=str(path), error=err.decode("utf-8", "replace")[:300])


async def sweep_work(work_root: Path, names: Iterable[str], keep: set[str]) -> int:
    """Remove the entries `names` of `work_root` but the folders of the jobs in `keep`."""
    removed = 0
    for entry in names:
        match = _WORK_RE.match(entry)
        if match is not None and match.group(1) in keep:
            continue
        await remove_tree(work_root / entry)
        removed += 1
    return removed


def detect_language(
    root: Path, languages: Mapping[str, LanguageSpec], default: str, limit: int = 20000
) -> str:
    """The language whose detect patterns match the most files (ties: config order)."""
    patterns = {name: spec.detect for name, spec in languages.items() if spec.detect}
    if not patterns:
        return default
    scores = dict.fromkeys(patterns, 0)
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", "node_modules", ".venv", "vendor")]
        rel_dir = os.path.relpath(dirpath, root)
        for fname in filenames:
            rel = fname if rel_dir == "." else f"{rel_dir}/{fname}"
            for name, globs in patterns.items():
                if matches(rel, globs):
                    scores[name] += 1
            seen += 1
            if seen >= limit:
                break
        if seen >= limit:
            break
    best = max(scores, key=lambda n: scores[n])
    return best if scores[best] > 0 else default


def build_tar(root: Path, target: Path, uid: int, gid: int) -> int:
    """Tar `root` (with .git) for unpacking in the box, owned by the sandbox user. Returns its size.

    Walked with an explicit stack (any depth is no recursion; Python 3.11's os.walk recurses),
    entries in sorted order; symlinks are stored as links and never entered; an unreadable
    folder raises rather than silently dropping a subtree.
    """
    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        stack = [""]  # folders still to list, relative to root
        while stack:
            rel = stack.pop()
            with os.scandir(root / rel if rel else root) as it:
                entries = sorted(it, key=lambda e: e.name)
            subdirs = []
            for entry in entries:
                arcname = f"{rel}/{entry.name}" if rel else entry.name
                info = tar.gettarinfo(entry.path, arcname=arcname)
                if info is None:  # a socket: nothing a checkout holds
                    continue
                info.uid, info.gid = uid, gid
                info.uname, info.gname = "sandbox", "sandbox"
                if info.isreg():
                    with open(entry.path, "rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
                if info.isdir():
                    subdirs.append(arcname)
            stack.extend(reversed(subdirs))  # depth first, in sorted order
    return target.stat().st_size
