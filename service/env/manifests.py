"""Collect a checkout's manifest files per ecosystem, and the environment key they make.

The checkout is a host folder that is only READ here, never executed: every path is opened
component by component without following a symbolic link (a repository can plant a link to any
host file), and each file is size-capped. What is collected (bytes, by repo-relative path):

- python: `uv.lock` (exact pins from the lock) or else `poetry.lock` (pins from the lock) or else
  the root `requirements*.txt` (with their `-r` / `-c` includes inside the repo) and
  `pyproject.toml` (project dependencies, dev/test/lint extras, PEP 735 dependency groups);
  `pyproject.toml` is kept alongside a lock for the project's name.
- node: `package.json` + `package-lock.json` or `npm-shrinkwrap.json`; a `yarn.lock` or
  `pnpm-lock.yaml` without an npm lockfile is unsupported (the state says so); `.npmrc` is noted
  (for the policy to report) but never collected.
- go: `go.mod` + `go.sum`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Ecosystem = Literal["python", "node", "go"]

POLICY_VERSION = "1"
FILE_CAP = 16 * 1024 * 1024  # one manifest or lockfile
TOTAL_CAP = 48 * 1024 * 1024
MAX_INCLUDES = 64

LANGUAGE_ECOSYSTEM: dict[str, Ecosystem] = {"python": "python", "node": "node", "go": "go"}
REQUIREMENTS_NAME = re.compile(r"^requirements[\w.-]*\.txt$", re.IGNORECASE)
_INCLUDE = re.compile(r"^\s*(?:-r|--requirement|-c|--constraint)(?:\s*=\s*|\s+)(\S+)")


class ManifestError(Exception):
    """A manifest that cannot be read safely (a link, too big, outside the repo)."""


@dataclass
class Manifests:
    ecosystem: Ecosystem
    files: dict[str, bytes] = field(default_factory=dict)
    present: set[str] = field(default_factory=set)  # root names seen but not collected (.npmrc, yarn.lock)
    unsupported: str | None = None  # why this repo's environment cannot be built (state `none`)

    def key(self, image_tag: str, builder_tag: str) -> str:
        """sha256 over the language image, the image that builds it, the ecosystem, every
        collected file (path + bytes) and the policy version."""
        h = hashlib.sha256()
        h.update(json.dumps([POLICY_VERSION, image_tag, builder_tag, self.ecosystem]).encode())
        for path in sorted(self.files):
            data = self.files[path]
            h.update(f"\0{path}\0{len(data)}\0".encode())
            h.update(data)
        return h.hexdigest()


def read_confined(root: Path, rel: str) -> bytes | None:
    """The bytes of `rel` under `root`, None when it does not exist. Refuses links (at any
    component), non-regular files, paths leaving the root and files over FILE_CAP."""
    norm = posixpath.normpath(rel)
    parts = norm.split("/")
    if norm.startswith("/") or ".." in parts or norm == ".":
        raise ManifestError(f"{rel}: outside the repository")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | os.O_NOFOLLOW | (0 if last else os.O_DIRECTORY)
            try:
                nfd = os.open(part, flags, dir_fd=fd)
            except FileNotFoundError:
                return None
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ManifestError(f"{rel}: a symbolic link or not a folder on the way") from e
                raise
            os.close(fd)
            fd = nfd
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ManifestError(f"{rel}: not a regular file")
        if st.st_size > FILE_CAP:
            raise ManifestError(f"{rel}: {st.st_size} bytes, above the {FILE_CAP} byte cap")
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            return fh.read(FILE_CAP + 1)
    finally:
        if fd >= 0:
            os.close(fd)


def _root_names(root: Path) -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(root) if e.is_file(follow_symlinks=False) or e.is_symlink())
    except FileNotFoundError:
        return []


def _requirements_closure(root: Path, first: list[str], out: dict[str, bytes]) -> None:
    """Collect requirement files and their -r / -c includes that stay inside the repo."""
    todo = list(first)
    while todo:
        rel = todo.pop(0)
        if rel in out:
            continue
        if len(out) >= MAX_INCLUDES:
            raise ManifestError(f"more than {MAX_INCLUDES} requirement files")
        data = read_confined(root, rel)
        if data is None:
            continue  # an include that does not exist: pip would fail, the policy reports it
        out[rel] = data
        for line in data.decode("utf-8", "replace").splitlines():
            m = _INCLUDE.match(line)
            if not m or "://" in m.group(1):
                continue
            target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), m.group(1)))
            if not target.startswith("../") and not target.startswith("/") and target != "..":
                todo.append(target)


def collect(root: Path, language: str) -> Manifests | None:
    """The manifests of the job's language ecosystem; None when the language has none (shell,
    generic) or the repo has no manifest. Blocking: call it in a thread."""
    ecosystem = LANGUAGE_ECOSYSTEM.get(language)
    if ecosystem is None:
        return None
    names = _root_names(root)
    found = Manifests(ecosystem)

    def take(name: str) -> bool:
        data = read_confined(root, name)
        if data is None:
            return False
        found.files[name] = data
        return True

    if ecosystem == "python":
        take("pyproject.toml")
        if not take("uv.lock") and not take("poetry.lock"):
            reqs: dict[str, bytes] = {}
            _requirements_closure(root, [n for n in names if REQUIREMENTS_NAME.match(n)], reqs)
            found.files.update(reqs)
        if not found.files:
            return None
    elif ecosystem == "node":
        found.present = {n for n in (".npmrc", "yarn.lock", "pnpm-lock.yaml") if n in names}
        if not take("package.json"):
            return None
        if not take("npm-shrinkwrap.json") and not take("package-lock.json"):
            other = sorted(found.present & {"yarn.lock", "pnpm-lock.yaml"})
            if other:
                found.unsupported = (
                    f"{other[0]} is not supported: dockyard builds node environments from "
                    "package-lock.json or npm-shrinkwrap.json only"
                )
    else:
        if not take("go.mod"):
            return None
        take("go.sum")
    if sum(len(d) for d in found.files.values()) > TOTAL_CAP:
        raise ManifestError(f"the manifests are above the {TOTAL_CAP} byte cap together")
    return found
