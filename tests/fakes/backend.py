"""An in-memory sandbox backend: the whole `SandboxBackend` Protocol, no engine.

Boxes, volumes and networks are dicts; a box's workspace is the tar `create` was handed, read
into `files`; an exec is answered by a small handler table keyed by argv[0] (`cat` and `true`
built in, tests add their own). Labels follow the real backend's rules (`service.sandbox.labels`:
every box and volume carries dockyard.managed and this instance, a job's box and its volume are
named `box_name(job_id)`), so the reaper reconciles against it exactly as against Docker.

What a test can do behind the service's back: `vanish(job_id)` (the box removed),
`stop(job_id)` (stopped, still listed), `plant_box(...)`/`plant_volume(...)` (leftovers of a
crash, another instance's boxes), `available = False` (every call: BackendUnavailable), and
`hold_create` (an Event `create` waits on: a create in flight).
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import tarfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from service.sandbox.backend import (
    Box,
    BoxInfo,
    BoxSpec,
    EnvRunSpec,
    ExecResult,
    HelperStream,
    RunSpec,
    SandboxBackend,
    VolumeInfo,
)
from service.sandbox.errors import BackendUnavailable, ImageNotBuilt, SandboxGone
from service.sandbox.labels import EXPIRES_LABEL, INSTANCE_LABEL, JOB_LABEL, MANAGED_LABEL, box_name
from service.settings import Limits
from tests.fakes.helper import FilesHelper


@dataclass
class FakeBox:
    id: str
    name: str
    image: str
    labels: dict[str, str]
    volume: str | None
    running: bool = True
    created: float = field(default_factory=time.time)
    files: dict[str, bytes] = field(default_factory=dict)
    log: bytearray = field(default_factory=bytearray)
    execs: list[list[str]] = field(default_factory=list)


Answer = ExecResult | Awaitable[ExecResult]
Handler = Callable[[FakeBox, list[str], bytes | None], Answer]


def answer(
    argv: list[str], exit_code: int | None = 0, stdout: bytes = b"", stderr: bytes = b""
) -> ExecResult:
    return ExecResult(list(argv), exit_code, stdout, stderr, 1, 0, len(stdout) + len(stderr))


def _cat(box: FakeBox, argv: list[str], stdin: bytes | None) -> ExecResult:
    path = argv[1] if len(argv) > 1 else ""
    if path not in box.files:
        return answer(argv, 1, stderr=f"cat: {path}: No such file or directory\n".encode())
    return answer(argv, 0, box.files[path])


def _true(box: FakeBox, argv: list[str], stdin: bytes | None) -> ExecResult:
    return answer(argv, 0)


class FakeBackend:
    def __init__(self, *, instance: str | None = None, images: set[str] | None = None):
        self.instance = instance
        self._own = {MANAGED_LABEL: "true", **({INSTANCE_LABEL: instance} if instance else {})}
        self.images = images  # None: every image is present
        self.boxes: dict[str, FakeBox] = {}
        self.volumes: dict[str, dict[str, str]] = {}
        self.networks: dict[str, dict[str, str]] = {}
        self.handlers: dict[str, Handler] = {"cat": _cat, "true": _true}
        self.helpers: list[FilesHelper] = []  # every helper a channel opened, in order
        self.available = True
        self.hold_create: asyncio.Event | None = None
        self.creating = asyncio.Event()  # set once a create has started (and is held, if held)
        self.closed = False
        self._ids = itertools.count(1)

    # --- for tests -----------------------------------------------------------------------------

    def job_box(self, job_id: str) -> FakeBox | None:
        return next((b for b in self.boxes.values() if b.name == box_name(job_id)), None)

    def vanish(self, job_id: str) -> None:
        """The job's box removed behind the service's back (its volume stays, like `docker rm`)."""
        box = self.job_box(job_id)
        assert box is not None, f"no box for {job_id}"
        del self.boxes[box.id]

    def stop(self, job_id: str) -> None:
        box = self.job_box(job_id)
        assert box is not None, f"no box for {job_id}"
        box.running = False

    def plant_box(self, name: str, labels: dict[str, str], *, created: float | None = None) -> FakeBox:
        box = FakeBox(self._id(), name, "planted", dict(labels), None, created=created or time.time())
        self.boxes[box.id] = box
        return box

    def plant_volume(self, name: str, labels: dict[str, str]) -> None:
        self.volumes[name] = dict(labels)

    def _id(self) -> str:
        return f"fake{next(self._ids):012d}"

    def _up(self) -> None:
        if not self.available:
            raise BackendUnavailable("the fake backend is away")

    def _image(self, image: str) -> None:
        if self.images is not None and image not in self.images:
            raise ImageNotBuilt(
                f"sandbox image {image} is not built; run `dockyard images build`", {"image": image}
            )

    async def _answer(self, box: FakeBox, argv: list[str], stdin: bytes | None) -> ExecResult:
        box.execs.append(list(argv))
        handler = self.handlers.get(argv[0]) if argv else None
        if handler is None:
            return answer(argv, 127, stderr=f"{argv[0] if argv else ''}: not found\n".encode())
        got = handler(box, argv, stdin)
        return await got if inspect.isawaitable(got) else got

    # --- the Protocol --------------------------------------------------------------------------

    async def ping(self) -> None:
        self._up()

    async def image_present(self, tag: str) -> bool:
        self._up()
        return self.images is None or tag in self.images

    async def create(self, spec: BoxSpec, workspace_tar: Path) -> Box:
        self._up()
        self.creating.set()
        if self.hold_create is not None:
            await self.hold_create.wait()
        self._up()
        self._image(spec.image)
        name = box_name(spec.job_id)
        self.volumes[name] = {**self._own, JOB_LABEL: spec.job_id}
        labels = {
            **spec.labels,
            **self._own,
            JOB_LABEL: spec.job_id,
            EXPIRES_LABEL: spec.expires_at.isoformat().replace("+00:00", "Z"),
        }
        box = FakeBox(self._id(), name, spec.image, labels, name)
        with tarfile.open(workspace_tar) as tar:
            for member in tar.getmembers():
                fh = tar.extractfile(member) if member.isfile() else None
                if fh is not None:
                    box.files[member.name.removeprefix("./")] = fh.read()
        box.log += b"box started\n"
        self.boxes[box.id] = box
        return box_record(box)

    async def exec(
        self, container_id: str, argv: list[str], *, stdin: bytes | None, timeout_s: float, output_cap: int
    ) -> ExecResult:
        self._up()
        box = self.boxes.get(container_id)
        if box is None:
            raise SandboxGone("the job's container is gone", {"container_id": container_id})
        if not box.running:
            raise SandboxGone("the job's container is not running", {"container_id": container_id})
        return await self._answer(box, argv, stdin)

    async def open_helper(self, container_id: str) -> HelperStream:
        self._up()
        box = self.boxes.get(container_id)
        if box is None:
            raise SandboxGone("the job's container is gone", {"container_id": container_id})
        if not box.running:
            raise SandboxGone("the job's container is not running", {"container_id": container_id})
        helper = FilesHelper(box.files)
        self.helpers.append(helper)
        return helper

    async def run(self, spec: RunSpec) -> ExecResult:
        self._up()
        self._image(spec.image)
        box = FakeBox(self._id(), spec.name, spec.image, {**spec.labels, **self._own}, spec.workspace_volume)
        self.boxes[box.id] = box
        try:
            return await self._answer(box, spec.argv, None)
        finally:
            self.boxes.pop(box.id, None)

    async def create_linter_box(self, spec: RunSpec) -> str:
        self._up()
        self._image(spec.image)
        box = FakeBox(self._id(), spec.name, spec.image, {**spec.labels, **self._own}, spec.workspace_volume)
        self.boxes[box.id] = box
        return box.id

    async def is_running(self, container_id: str) -> bool:
        self._up()
        box = self.boxes.get(container_id)
        return box is not None and box.running

    async def list_managed(self) -> tuple[list[BoxInfo], list[VolumeInfo]]:
        self._up()
        boxes = [
            BoxInfo(b.id, b.name, dict(b.labels), b.running, b.created)
            for b in self.boxes.values()
            if b.labels.get(MANAGED_LABEL) == "true"
        ]
        volumes = [
            VolumeInfo(n, dict(lab)) for n, lab in self.volumes.items() if lab.get(MANAGED_LABEL) == "true"
        ]
        return boxes, volumes

    async def logs(self, container_id: str, max_bytes: int) -> bytes:
        self._up()
        box = self.boxes.get(container_id)
        return bytes(box.log[-max_bytes:]) if box is not None else b""

    async def remove_job_boxes(self, job_id: str) -> int:
        self._up()
        mine = [
            b.id
            for b in self.boxes.values()
            if b.labels.get(JOB_LABEL) == job_id and all(b.labels.get(k) == v for k, v in self._own.items())
        ]
        for box_id in mine:
            del self.boxes[box_id]
        return len(mine)

    async def destroy(self, container_id: str | None, volume: str | None) -> None:
        self._up()
        if container_id:
            self.boxes.pop(container_id, None)
            for b in [b for b in self.boxes.values() if b.name == container_id]:  # by name, like docker
                del self.boxes[b.id]
        if volume:
            self.volumes.pop(volume, None)

    async def close(self) -> None:
        self.closed = True

    # --- dependency environments ---------------------------------------------------------------

    async def env_network(self, name: str, labels: dict[str, str]) -> None:
        self._up()
        self.networks.setdefault(name, dict(labels))

    async def env_proxy(
        self, name: str, image: str, network: str, labels: dict[str, str], limits: Limits
    ) -> None:
        self._up()
        if not any(b.name == name and b.running for b in self.boxes.values()):
            self.plant_box(name, labels)

    async def env_volume_create(self, name: str, labels: dict[str, str]) -> None:
        self._up()
        self.volumes[name] = dict(labels)

    async def env_volume_remove(self, name: str) -> None:
        self._up()
        self.volumes.pop(name, None)

    async def env_volumes(self, label: str) -> list[VolumeInfo]:
        self._up()
        key, _, value = label.partition("=")
        return [VolumeInfo(n, dict(lab)) for n, lab in self.volumes.items() if lab.get(key) == value]

    async def env_run(self, spec: EnvRunSpec) -> ExecResult:
        self._up()
        self._image(spec.image)
        box = FakeBox(self._id(), spec.name, spec.image, dict(spec.labels), spec.workspace_volume)
        self.boxes[box.id] = box
        try:
            return await self._answer(box, spec.argv, None)
        finally:
            self.boxes.pop(box.id, None)

    async def env_cleanup(self, label: str, *, network: str | None) -> None:
        self._up()
        key, _, value = label.partition("=")
        for b in [b for b in self.boxes.values() if b.labels.get(key) == value]:
            del self.boxes[b.id]
        if network is not None:
            self.networks.pop(network, None)


def box_record(box: FakeBox) -> Box:
    assert box.volume is not None
    return Box(box.id, box.volume)


# mypy checks the fake against the Protocol: a method missing or mistyped fails `mypy tests`.
_checked: SandboxBackend = FakeBackend()
