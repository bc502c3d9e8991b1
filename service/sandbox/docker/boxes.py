"""Job boxes on the Docker engine: create (the tree unpacked inside), exec, one-shot runs, linter
boxes, removal, listing by label. The module docstring of `engine.py` says why docker-py and how
the pools share the engine; this class is the `SandboxBackend` the factory hands out."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import docker.errors

from service.sandbox.backend import Box, BoxInfo, BoxSpec, ExecResult, HelperStream, RunSpec, VolumeInfo
from service.sandbox.docker.engine import WORKSPACE, require_image
from service.sandbox.docker.env import EnvBoxes
from service.sandbox.docker.execs import _kill_marker, run_container, run_exec
from service.sandbox.docker.helper import open_stream, start_helper_blocking
from service.sandbox.errors import BackendRefused, SandboxError, SandboxGone, WorkspaceTooLarge
from service.sandbox.labels import EXPIRES_LABEL, JOB_LABEL, MANAGED_LABEL, box_name

# GNU tar (the base image's), run as the job's user: members named absolute or with `..` are refused
# by default, ownership is the user's own, modes keep their exec bits (only the umask applies), the
# existing /workspace keeps its mode, and a link to outside is never followed while extracting.
UNPACK_ARGV = [
    "tar",
    "-x",
    "-f",
    "-",
    "-C",
    WORKSPACE,
    "--no-same-owner",
    "--no-same-permissions",
    "--no-overwrite-dir",
    "--delay-directory-restore",
]
UNPACK_OUTPUT_CAP = 1 << 20
# A job box's main process: the helper's log daemon, whose stdout is the box's log stream (one line
# per call the helper answers, one per plain exec the service notes).
LOGD_ARGV = ["dockyard-tool", "logd"]
# What tar says (a short write is how a full tmpfs shows), or how it dies (SIGXFSZ: 128 + 25),
# when the tree does not fit the caps.
_NO_ROOM = ("no space left on device", "wrote only", "file too large", "disk quota exceeded")
_SIGXFSZ_EXIT = 153


class DockerBackend(EnvBoxes):
    """Every box dockyard runs, on one Docker engine (see the package's engine.py for the pools)."""

    # --- lifecycle -----------------------------------------------------------------------------

    def _create_blocking(self, spec: BoxSpec) -> Box:
        """The volume and the started box (lifecycle: short engine calls); the tree comes after."""
        client = self.client()
        name = box_name(spec.job_id)
        uid, _, gid = spec.user.partition(":")
        labels = {
            **spec.labels,
            **self._own_labels,
            JOB_LABEL: spec.job_id,
            EXPIRES_LABEL: spec.expires_at.isoformat().replace("+00:00", "Z"),
        }
        require_image(client, spec.image)
        client.volumes.create(
            name=name,
            driver="local",
            driver_opts={
                "type": "tmpfs",
                "device": "tmpfs",
                "o": f"size={spec.limits.disk_mb}m,uid={uid},gid={gid or uid},mode=0755,nosuid,nodev",
            },
            labels={**self._own_labels, JOB_LABEL: spec.job_id},
        )
        container_id = None
        try:
            created = client.api.create_container(
                spec.image,
                command=LOGD_ARGV,
                name=name,
                user=spec.user,
                working_dir=WORKSPACE,
                hostname="sandbox",
                labels=labels,
                environment={},
                network_disabled=True,
                host_config=self._host_config(
                    spec.limits,
                    volume=name,
                    workspace_read_only=False,
                    nofile=spec.nofile,
                    fsize_bytes=spec.fsize_bytes,
                    tmp_mb=spec.tmp_mb,
                    log_max_mb=spec.log_max_mb,
                    runtime=spec.runtime,
                    extra_mounts=spec.mounts,
                ),
            )
            container_id = created["Id"]
            client.api.start(container_id)
            return Box(container_id, name)
        except BaseException:
            self._destroy_blocking(container_id or name, name)
            raise

    def _unpack_blocking(self, container_id: str, spec: BoxSpec, tar: Path) -> None:
        """Unpack the workspace tar inside the box, as the job's user: its pages are the job's."""
        with tar.open("rb") as fh:
            result = run_exec(
                self.client().api,
                container_id,
                UNPACK_ARGV,
                stdin=fh,
                timeout_s=spec.unpack_timeout_s,
                output_cap=UNPACK_OUTPUT_CAP,
                oom_since=self._oom_since(container_id),
            )
        if result.exit_code == 0 and not result.output_truncated:
            return
        said = result.stderr.decode("utf-8", "replace")
        if result.exit_code == _SIGXFSZ_EXIT or any(m in said.lower() for m in _NO_ROOM):
            raise WorkspaceTooLarge(
                f"the repository does not fit the job's disk cap ({spec.limits.disk_mb} MB)",
                {"disk_mb": spec.limits.disk_mb},
            )
        if result.timed_out:
            raise BackendRefused(
                f"unpacking the workspace took longer than {spec.unpack_timeout_s:g} s",
                {"timeout_s": spec.unpack_timeout_s},
            )
        first = (said.strip().splitlines() or [f"exit {result.exit_code}"])[0][:300]
        raise BackendRefused(f"unpacking the workspace failed: {first}", {"exit_code": result.exit_code})

    async def create(self, spec: BoxSpec, workspace_tar: Path) -> Box:
        """Create and start the box (control pool), then unpack the tree in it: an exec of the
        job's own (exec pool, one of its slots), so a big tree never holds a lifecycle worker."""
        box = await self._run(self._control_pool, self._create_blocking, spec)
        try:
            async with self._slots(box.container_id):
                await self._run(self._exec_pool, self._unpack_blocking, box.container_id, spec, workspace_tar)
        except BaseException:
            with contextlib.suppress(SandboxError):  # the original error is the answer; the reaper sweeps
                await self.destroy(box.container_id, box.volume)
            raise
        return box

    async def remove_job_boxes(self, job_id: str) -> int:
        """Remove every box of this instance that belongs to one job (its linter and test boxes,
        the job box too): done before the job's volume goes, since they mount it."""

        def remove() -> int:
            api = self.client().api
            labels = [f"{JOB_LABEL}={job_id}", *(f"{k}={v}" for k, v in self._own_labels.items())]
            found = api.containers(all=True, filters={"label": labels})
            for c in found:
                try:
                    api.remove_container(c["Id"], force=True)
                except docker.errors.NotFound:
                    pass
            return len(found)

        return await self._run(self._control_pool, remove)

    async def destroy(self, container_id: str | None, volume: str | None) -> None:
        if container_id:
            self._job_slots.pop(container_id, None)
        await self._run(self._control_pool, self._destroy_blocking, container_id, volume)

    async def is_running(self, container_id: str) -> bool:
        def check() -> bool:
            try:
                info = self.client().api.inspect_container(container_id)
            except docker.errors.NotFound:
                return False
            return bool(info["State"]["Running"])

        return await self._run(self._control_pool, check)

    async def logs(self, container_id: str, max_bytes: int) -> bytes:
        def fetch() -> bytes:
            try:
                data: bytes = self.client().api.logs(container_id, stdout=True, stderr=True, timestamps=True)
            except docker.errors.NotFound:
                return b""
            return data[-max_bytes:]

        return await self._run(self._control_pool, fetch)

    async def list_managed(self) -> tuple[list[BoxInfo], list[VolumeInfo]]:
        """Every container (running or not) and volume labelled dockyard.managed, any instance's."""

        def fetch() -> tuple[list[BoxInfo], list[VolumeInfo]]:
            api = self.client().api
            flt = {"label": f"{MANAGED_LABEL}=true"}
            containers = [
                BoxInfo(
                    id=c["Id"],
                    name=(c.get("Names") or ["/"])[0].lstrip("/"),
                    labels=dict(c.get("Labels") or {}),
                    running=c.get("State") == "running",
                    created=float(c.get("Created") or 0),
                )
                for c in api.containers(all=True, filters=flt)
            ]
            volumes = [
                VolumeInfo(name=v["Name"], labels=dict(v.get("Labels") or {}))
                for v in (api.volumes(filters=flt).get("Volumes") or [])
            ]
            return containers, volumes

        return await self._run(self._control_pool, fetch)

    # --- exec ----------------------------------------------------------------------------------

    def _exec_blocking(
        self, container_id: str, argv: list[str], stdin: bytes | None, timeout_s: float, output_cap: int
    ) -> ExecResult:
        api = self.client().api
        try:
            return run_exec(
                api,
                container_id,
                argv,
                stdin=stdin,
                timeout_s=timeout_s,
                output_cap=output_cap,
                oom_since=self._oom_since(container_id),
            )
        except docker.errors.NotFound as e:
            raise SandboxGone("the job's container is gone", {"container_id": container_id}) from e
        except docker.errors.APIError as e:
            if e.status_code == 409:
                raise SandboxGone("the job's container is not running", {"container_id": container_id}) from e
            raise

    def _create_read_only(self, spec: RunSpec, command: list[str], *, tmp_exec: bool) -> str:
        """A box over the job's workspace, read-only (a one-shot run or a linter box), not started."""
        client = self.client()
        require_image(client, spec.image)
        created = client.api.create_container(
            spec.image,
            command=command,
            name=spec.name,
            user=spec.user,
            working_dir=spec.workdir,
            hostname="sandbox",
            labels={**spec.labels, **self._own_labels},
            environment=spec.env,
            network_disabled=True,
            host_config=self._host_config(
                spec.limits,
                volume=spec.workspace_volume,
                workspace_read_only=True,
                nofile=spec.nofile,
                fsize_bytes=spec.tmp_mb * 1024 * 1024,
                tmp_mb=spec.tmp_mb,
                log_max_mb=1,
                runtime=spec.runtime,
                extra_mounts=spec.mounts,
                tmp_exec=tmp_exec,
            ),
        )
        container_id: str = created["Id"]
        return container_id

    def _run_blocking(self, spec: RunSpec) -> ExecResult:
        container_id = self._create_read_only(spec, spec.argv, tmp_exec=spec.tmp_exec)
        api = self.client().api
        try:
            return run_container(
                api,
                container_id,
                spec.argv,
                timeout_s=spec.timeout_s,
                output_cap=spec.output_cap,
                oom_since=self._oom_since(container_id),
            )
        finally:
            try:
                api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass

    async def run(self, spec: RunSpec) -> ExecResult:
        """A one-shot container (a linter): created, run to its end or deadline, removed."""
        return await self._run(self._run_pool, self._run_blocking, spec)

    async def open_helper(self, container_id: str) -> HelperStream:
        """The box's tool helper over one exec, its socket handed to asyncio (no thread kept)."""

        def start() -> tuple[Any, Any, bytes, str]:
            try:
                return start_helper_blocking(self.client().api, container_id)
            except docker.errors.NotFound as e:
                raise SandboxGone("the job's container is gone", {"container_id": container_id}) from e
            except docker.errors.APIError as e:
                if e.status_code == 409:
                    raise SandboxGone(
                        "the job's container is not running", {"container_id": container_id}
                    ) from e
                raise

        response, sock, early, marker = await self._run(self._control_pool, start)

        async def kill() -> None:
            await self._run(self._control_pool, _kill_marker, self.client().api, container_id, marker)

        def release() -> None:
            with contextlib.suppress(Exception):
                response.close()

        return await open_stream(sock, early, release=release, kill=kill, box_id=container_id)

    async def exec(
        self, container_id: str, argv: list[str], *, stdin: bytes | None, timeout_s: float, output_cap: int
    ) -> ExecResult:
        async with self._slots(container_id):
            return await self._run(
                self._exec_pool, self._exec_blocking, container_id, argv, stdin, timeout_s, output_cap
            )

    # --- linter boxes --------------------------------------------------------------------------

    def _linter_box_blocking(self, spec: RunSpec) -> str:
        """A long-lived linter box: hardened like every box, the workspace read-only, idle until
        each linter run execs into it (the caller resets processes and /tmp between runs)."""
        container_id = self._create_read_only(spec, ["sleep", "infinity"], tmp_exec=False)
        try:
            self.client().api.start(container_id)
        except BaseException:
            self._destroy_blocking(container_id, None)
            raise
        return container_id

    async def create_linter_box(self, spec: RunSpec) -> str:
        """Start a linter box (spec.argv is unused: runs are execs); remove it with destroy()."""
        return await self._run(self._control_pool, self._linter_box_blocking, spec)
