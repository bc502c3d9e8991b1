"""Checking and building the sandbox images on the Docker engine (`dockyard images list|build`).

What an image is and its content-hash tag are `service.images`'; this is the engine side.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors

from service.images import ResolvedImage, context_tar


def engine_client(timeout: int) -> docker.DockerClient:
    """A client for the engine the environment names (DOCKER_HOST or the local socket)."""
    return docker.from_env(timeout=timeout)


def missing_images(client: docker.DockerClient, images: dict[str, ResolvedImage]) -> list[str]:
    missing = []
    for img in images.values():
        try:
            client.images.get(img.tag)
        except docker.errors.ImageNotFound:
            missing.append(img.tag)
    return missing


def build_images(
    client: docker.DockerClient,
    images: dict[str, ResolvedImage],
    *,
    extra_ca: Path | None,
    only: set[str] | None = None,
    force: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """Build what is missing (all of `only` and their parents). Returns name → 'built'|'cached'."""
    wanted = set(images) if not only else set()
    for name in only or ():
        while name:
            wanted.add(name)
            name = images[name].spec.parent or ""
    outcome: dict[str, str] = {}
    for name, img in images.items():
        if name not in wanted:
            continue
        if not force:
            try:
                client.images.get(img.tag)
                outcome[name] = "cached"
                log(f"{img.tag}: up to date")
                continue
            except docker.errors.ImageNotFound:
                pass
        log(f"{img.tag}: building from {img.context_dir}")
        stream = client.api.build(
            fileobj=context_tar(img, extra_ca),
            custom_context=True,
            dockerfile=img.spec.dockerfile,
            tag=img.tag,
            buildargs=img.build_args,
            labels={"dockyard.image": name, "dockyard.content-hash": img.tag.split(":")[1]},
            rm=True,
            forcerm=True,
            pull=False,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                raise RuntimeError(f"building {img.tag} failed: {chunk['error'].strip()}")
            text = chunk.get("stream", "").rstrip()
            if text:
                log(f"  {text}")
        outcome[name] = "built"
    return outcome
