"""The sandbox backend interface: what the job service needs from wherever boxes run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from service.settings import Limits


def box_memory_mb(limits: Limits, tmp_mb: int, *, writes_workspace: bool) -> int:
    """A box's memory cgroup limit: its processes' `memory_mb` plus every tmpfs it writes.

    tmpfs pages are charged to the cgroup of the process that writes them, so a job box (which
    unpacks and writes its workspace volume) is charged for `disk_mb` of workspace and `tmp_mb` of
    /tmp on top of what its processes use; a one-shot box (workspace read-only: those pages stay
    the job box's) for its /tmp only. With the sum as the limit each cap holds at once — a full
    workspace and a full /tmp still leave `memory_mb` to the processes — and this is what the host
    must be able to give the box: admission budgets this number.
    """
    return limits.memory_mb + tmp_mb + (limits.disk_mb if writes_workspace else 0)


@dataclass(frozen=True)
class VolumeMount:
    """A named volume mounted into a box (a dependency environment, read-only by default)."""

    source: str
    target: str
    read_only: bool = True


@dataclass(frozen=True)
class BoxSpec:
    job_id: str
    image: str
    limits: Limits
    labels: dict[str, str]
    expires_at: datetime
    user: str
    nofile: int
    fsize_bytes: int
    tmp_mb: int
    log_max_mb: int
    runtime: str | None = None
    mounts: tuple[VolumeMount, ...] = ()
    unpack_timeout_s: float = 300.0  # unpacking the workspace tar inside the box


@dataclass(frozen=True)
class RunSpec:
    """A one-shot box (a linter run): the job's workspace read-only, its own caps, then removed."""

    name: str
    image: str
    argv: list[str]
    workspace_volume: str
    limits: Limits
    labels: dict[str, str]
    user: str
    nofile: int
    tmp_mb: int
    timeout_s: float
    output_cap: int
    workdir: str = "/workspace"
    env: dict[str, str] = field(default_factory=dict)
    runtime: str | None = None
    mounts: tuple[VolumeMount, ...] = ()
    # /tmp may hold executables (a test box: go's compiled test binaries, the repo's own scripts in
    # the workspace copy). It stays nosuid, nodev; linter boxes keep docker's noexec default.
    tmp_exec: bool = False


@dataclass(frozen=True)
class EnvRunSpec:
    """A one-shot box that builds a dependency environment (a fetch or an install).

    `workspace_volume` is mounted READ-WRITE at /workspace and `inputs` (a tar) is extracted there
    before the box starts; `network` is an internal network whose only way out is the egress proxy
    (a fetch) or "none" (an install). Everything else is the same hardening as every box.
    """

    name: str
    image: str
    argv: list[str]
    workspace_volume: str
    inputs: bytes
    limits: Limits
    labels: dict[str, str]
    user: str
    nofile: int
    tmp_mb: int
    timeout_s: float
    output_cap: int
    network: str = "none"
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[VolumeMount, ...] = ()


@dataclass(frozen=True)
class VolumeInfo:
    """A volume the backend made (listed by label)."""

    name: str
    labels: dict[str, str]


EnvVolume = VolumeInfo  # a dependency environment's volume


@dataclass(frozen=True)
class BoxInfo:
    """A box the backend made, running or not (listed by label: reconcile after a restart)."""

    id: str
    name: str
    labels: dict[str, str]
    running: bool
    created: float  # epoch seconds


@dataclass(frozen=True)
class Box:
    container_id: str
    volume: str


@dataclass
class ExecResult:
    argv: list[str]
    exit_code: int | None
    stdout: bytes
    stderr: bytes
    duration_ms: int
    bytes_in: int
    bytes_out: int
    timed_out: bool = False
    oom_killed: bool = False
    output_truncated: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def outcome(self) -> str:
        if self.timed_out:
            return "timed_out"
        if self.oom_killed:
            return "oom_killed"
        if self.output_truncated:
            return "output_capped"
        return "ok" if self.exit_code == 0 else "error"


class SandboxBackend(Protocol):
    """Everything the service needs from wherever boxes run. Failures are the neutral errors of
    `service.sandbox.errors` (BackendUnavailable, SandboxGone, ImageNotBuilt, …); a box's name and
    its labels are `service.sandbox.labels`'."""

    async def ping(self) -> None:
        """Raises BackendUnavailable when the backend does not answer."""
        ...

    async def image_present(self, tag: str) -> bool: ...

    async def create(self, spec: BoxSpec, workspace_tar: Path) -> Box: ...

    async def exec(
        self, container_id: str, argv: list[str], *, stdin: bytes | None, timeout_s: float, output_cap: int
    ) -> ExecResult:
        """One command in a running box; SandboxGone when the box is not there or not running."""
        ...

    async def open_helper(self, container_id: str) -> HelperStream:
        """Start the box's long-lived tool helper (`dockyard-tool serve`) and stream to it."""
        ...

    async def run(self, spec: RunSpec) -> ExecResult: ...

    async def create_linter_box(self, spec: RunSpec) -> str:
        """A long-lived box for a job's linter runs (execs); its container id. Removed by destroy()."""
        ...

    async def is_running(self, container_id: str) -> bool: ...

    async def list_managed(self) -> tuple[list[BoxInfo], list[VolumeInfo]]:
        """Every box (running or not) and volume labelled dockyard.managed, any instance's."""
        ...

    async def logs(self, container_id: str, max_bytes: int) -> bytes: ...

    async def remove_job_boxes(self, job_id: str) -> int: ...

    async def destroy(self, container_id: str | None, volume: str | None) -> None: ...

    async def close(self) -> None: ...

    # --- dependency environments (service/env/) ------------------------------------------------

    async def env_network(self, name: str, labels: dict[str, str]) -> None:
        """Make sure an internal network (no route out, no DNS out) of that name exists."""
        ...

    async def env_proxy(
        self, name: str, image: str, network: str, labels: dict[str, str], limits: Limits
    ) -> None:
        """Make sure the egress proxy box runs: on `network` and on the default bridge."""
        ...

    async def env_volume_create(self, name: str, labels: dict[str, str]) -> None: ...

    async def env_volume_remove(self, name: str) -> None: ...

    async def env_volumes(self, label: str) -> list[EnvVolume]:
        """Every volume carrying `label` (a `key=value` filter)."""
        ...

    async def env_run(self, spec: EnvRunSpec) -> ExecResult: ...

    async def env_cleanup(self, label: str, *, network: str | None) -> None:
        """Remove every container carrying `label` (fetch/install boxes, the proxy), then `network`."""
        ...


class HelperStream(Protocol):
    """The byte stream to one long-lived helper process in a box (its stdin and stdout)."""

    async def read_exactly(self, n: int) -> bytes:
        """n bytes of the helper's stdout; EOFError when it has ended."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def kill(self) -> None:
        """Kill the helper process in the box (it may be stuck and not read its stdin)."""
        ...

    async def close(self) -> None:
        """Close its stdin (the helper exits) and free the stream."""
        ...
