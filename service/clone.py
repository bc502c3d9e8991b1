"""Cloning a repository on the service side (the sandbox never has network) into a tar for the box.

git runs as an async subprocess with a deadline, no prompts, no system or user config, and only
the allowed URL schemes. The checkout keeps no remote URL (so no credential or mirror address
lands in `/workspace/.git/config`). The tar is built in a worker thread; symlinks are stored as
links, never followed, so a planted link cannot pull a host file into the box.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from service.errors import CloneFailed, InvalidRequest
from service.gitproc import base_env, run_git
from service.lint.detect import matches
from service.logging import get_logger
from service.settings import LanguageSpec

log = get_logger(__name__)

SHA_RE = re.compile(r"^[0-9a-f]{7,64}$")
_GIT_CONFIG = [
    "-c",
    "advice.detachedHead=false",
    "-c",
    "init.defaultBranch=main",
    "-c",
    "protocol.version=2",
    "-c",
    "core.symlinks=true",
]


@dataclass(frozen=True)
class Checkout:
    path: Path
    base_sha: str
    ref: str | None


def redact_url(url: str) -> str:
    """The URL without user info (a token in `https://x:TOKEN@host/` must never be echoed)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
    return url


def check_clone_url(url: str, allowed_schemes: frozenset[str]) -> None:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise InvalidRequest(
            "clone_url must be a URL with a scheme (e.g. https://host/owner/repo.git or file:///srv/repo)",
            {"clone_url": redact_url(url)},
        )
    if scheme not in allowed_schemes:
        raise InvalidRequest(
            f"clone_url scheme {scheme!r} is not allowed; allowed: {', '.join(sorted(allowed_schemes))}",
            {"clone_url": redact_url(url), "allowed_schemes": sorted(allowed_schemes)},
        )
    if url.startswith("-") or any(ord(c) < 0x20 for c in url):
        raise InvalidRequest("clone_url contains forbidden characters", {})


class GitRunner:
    """Runs git with a clean environment and a deadline."""

    def __init__(self, workdir: Path, env: Mapping[str, str], deadline: float, redact: list[str]):
        self._workdir = workdir
        self._env = dict(env)
        self._deadline = deadline
        self._redact = [r for r in redact if r]

    def _clean(self, text: str) -> str:
        for secret in self._redact:
            text = text.replace(secret, "***")
        return text

    async def __call__(self, *args: str, check: bool = True) -> tuple[int, str, str]:
        loop = asyncio.get_running_loop()
        remaining = self._deadline - loop.time()
        if remaining <= 0:
            raise CloneFailed(
                "the clone took longer than the configured clone timeout", {"reason": "timeout"}
            )
        try:
            out = await run_git([*_GIT_CONFIG, *args], cwd=self._workdir, env=self._env, timeout_s=remaining)
        except TimeoutError as e:
            raise CloneFailed(
                "the clone took longer than the configured clone timeout", {"reason": "timeout"}
            ) from e
        stderr = self._clean(out.stderr)
        if check and out.code != 0:
            raise _GitError(out.code, stderr)
        return out.code, out.stdout, stderr


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
    if "authentication" in low or "403" in low or "401" in low:
        return "auth_failed"
    return "git_error"


def _last_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "no output"


async def clone(
    url: str,
    ref: str | None,
    dest: Path,
    *,
    timeout_s: float,
    allowed_schemes: frozenset[str],
    display: str | None = None,
    extra_env: Mapping[str, str] | None = None,
    secrets: list[str] | None = None,
) -> Checkout:
    """Fetch `ref` (or the default branch) of `url` into `dest` and check it out, detached.

    `extra_env` reaches git only (e.g. the GitHub token's auth header as GIT_CONFIG_*), and
    `secrets` are scrubbed from every message.
    """
    name = display or redact_url(url)
    home = dest.parent / (dest.name + ".home")
    await asyncio.to_thread(dest.mkdir, parents=True)
    await asyncio.to_thread(home.mkdir)
    loop = asyncio.get_running_loop()
    git = GitRunner(dest, _git_env(home, allowed_schemes, extra_env), loop.time() + timeout_s, secrets or [])
    try:
        await git("init", "-q")
        target = ref or "HEAD"
        try:
            await git("fetch", "-q", "--no-tags", "--depth", "1", "--", url, target)
        except _GitError as first:
            if not (ref and SHA_RE.match(ref)):
                raise first
            # Not every server serves a bare sha (or a short one): fetch everything and look it up.
            await git("fetch", "-q", "--tags", "--", url, "+refs/heads/*:refs/remotes/origin/*")
            code, _, _ = await git("rev-parse", "-q", "--verify", f"{ref}^{{commit}}", check=False)
            if code != 0:
                raise _GitError(128, f"fatal: couldn't find remote ref {ref}") from first
            await git("update-ref", "FETCH_HEAD", f"{ref}^{{commit}}")
        await git("checkout", "-q", "--detach", "FETCH_HEAD")
        _, sha, _ = await git("rev-parse", "HEAD")
        await asyncio.to_thread((dest / ".git" / "FETCH_HEAD").unlink, missing_ok=True)
    except _GitError as e:
        reason = _reason(e.stderr)
        what = {
            "ref_not_found": f"ref {ref!r} was not found in {name}",
            "repo_not_found": f"{name} is not a reachable git repository",
            "auth_failed": f"access to {name} was refused",
        }.get(reason, f"cloning {name} failed")
        log.info("clone_failed", repo=name, reason=reason, git=_last_line(e.stderr))
        raise CloneFailed(
            f"{what}: {_last_line(e.stderr)}", {"repo": name, "ref": ref, "reason": reason}
        ) from e
    finally:
        await asyncio.to_thread(shutil.rmtree, home, True)
    return Checkout(dest, sha.strip(), ref)


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
