"""Sandbox images: content-hash tags and cached builds.

Every image of `images.toml` is tagged `dockyard/<name>:<hash>` where the hash covers its build
context (every file's path, mode and bytes), its Dockerfile name, its build args and its parent's
tag. The service runs exactly the tag the files on disk describe, so a changed Dockerfile or helper
never runs a stale image, and a build whose tag already exists is skipped.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from service.settings import ImagesConfig, ImageSpec, Settings

EXTRA_CA_NAME = "dockyard-extra-ca.crt"
HASH_VERSION = "1"


@dataclass(frozen=True)
class ResolvedImage:
    name: str
    tag: str
    context_dir: Path
    spec: ImageSpec
    build_args: dict[str, str]


def _context_files(context_dir: Path) -> list[Path]:
    files = [p for p in context_dir.rglob("*") if p.is_file() or p.is_symlink()]
    return sorted(files, key=lambda p: p.relative_to(context_dir).as_posix())


def _order(cfg: ImagesConfig) -> list[str]:
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered:
            return
        if name in visiting:
            raise ValueError(f"images.{name}: parent chain loops")
        visiting.add(name)
        parent = cfg.images[name].parent
        if parent:
            visit(parent)
        ordered.append(name)

    for name in cfg.images:
        visit(name)
    return ordered


def resolve_images(cfg: ImagesConfig, config_path: Path, settings: Settings) -> dict[str, ResolvedImage]:
    """Compute every image's content-hash tag (reads files; call off the event loop)."""
    resolved: dict[str, ResolvedImage] = {}
    for name in _order(cfg):
        spec = cfg.images[name]
        context_dir = (config_path.parent / spec.context).resolve()
        args = dict(spec.build_args)
        if spec.parent:
            args["BASE_IMAGE"] = resolved[spec.parent].tag
        elif settings.base_image:
            args["BASE_IMAGE"] = settings.base_image
        h = hashlib.sha256()
        h.update(json.dumps([HASH_VERSION, spec.dockerfile, sorted(args.items())]).encode())
        for f in _context_files(context_dir):
            rel = f.relative_to(context_dir).as_posix()
            st = f.lstat()
            h.update(f"\0{rel}\0{'x' if st.st_mode & 0o111 else '-'}\0".encode())
            h.update(os.readlink(f).encode() if f.is_symlink() else f.read_bytes())
        tag = f"dockyard/{name}:{h.hexdigest()[:16]}"
        resolved[name] = ResolvedImage(name, tag, context_dir, spec, args)
    return resolved


def context_tar(image: ResolvedImage, extra_ca: Path | None) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for f in _context_files(image.context_dir):
            tar.add(f, arcname=f.relative_to(image.context_dir).as_posix(), recursive=False)
        # Always present so Dockerfiles can COPY it into a builder stage; empty unless ops pass a CA.
        ca = extra_ca.read_bytes() if extra_ca else b""
        info = tarfile.TarInfo(EXTRA_CA_NAME)
        info.size = len(ca)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(ca))
    buf.seek(0)
    return buf
