"""Boxes on a Docker engine, through docker-py in bounded thread pools.

Hardening lives here and only here: the HostConfig is built from a fixed template, never from
caller input. Why docker-py and not aiodocker: the tests drive the same SDK, its hijacked exec
socket gives us stdin with a clean half-close (write_file, replace_in_file), and the one weakness
of threads — a blocked call cannot be cancelled — is covered by the in-box `timeout -s KILL` and
the host-side deadline in `exec.py`, so no pool thread is held past a tool's timeout + grace.

Fair sharing: engine calls never share one pool. Tool execs in job boxes, one-shot runs (linter
boxes: create, attach, wait, remove) and lifecycle/control calls (create/destroy a job box,
inspect, logs, list) each have their own bounded pool (unpacking a new job's tree is an exec of
that job's, so a big tree never holds a lifecycle worker), readiness probes (ping, image checks) a
small one of their own, and one job runs at most `job_exec_slots` execs at once (the rest wait
on an asyncio semaphore, holding no thread). So hung linters fill only the run pool and one busy
job only its own slots. Kills never queue behind what they kill: an exec's or a run's kill runs
in the thread that waits on it (at the deadline) or in a thread of its own (over the output cap).

Host memory: the workspace is a tmpfs volume, and tmpfs pages are charged to the memory cgroup
of the process that writes them. The engine's `put_archive` wrote them from dockerd (charged to
no job), so the tree is unpacked INSIDE the box by `tar -x` running as the job's user, fed from
the host file in chunks over the exec's stdin. The box's cgroup limit is then `box_memory_mb`:
memory_mb for its processes plus disk_mb and tmp_mb for its two tmpfs mounts, so each cap can be
honoured at once and the host never holds a job's files outside the job's own limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Mount, Ulimit

from service.errors import DockerUnavailable, DockyardError, ImageMissing, PayloadTooLarge, SandboxFailed
from service.sandbox.backend import (
    Box,
    BoxSpec,
    EnvRunSpec,
    EnvVolume,
    ExecResult,
    HelperStream,
    RunSpec,
    VolumeMount,
    box_memory_mb,
)
from service.sandbox.docker_helper import open_stream, start_helper_blocking
from service.sandbox.exec import _kill_marker, run_container, run_exec
from service.settings import Limits

T = TypeVar("T")

PROBE_THREADS = 2  # readiness probes (ping, image checks): never queued behind the other pools

MANAGED_LABEL = "dockyard.managed"
JOB_LABEL = "dockyard.job"
EXPIRES_LABEL = "dockyard.expires"
INSTANCE_LABEL = "dockyard.instance"  # which service (state dir) owns it: reconcile touches only its own
WORKSPACE = "/workspace"
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
# What tar says (a short write is how a full tmpfs shows), or how it dies (SIGXFSZ: 128 + 25),
# when the tree does not fit the caps.
_NO_ROOM = ("no space left on device", "wrote only", "file too large", "disk quota exceeded")
_SIGXFSZ_EXIT = 153


class SandboxGone(SandboxFailed):
    """The job's container is no longer there (removed or stopped behind our back)."""

    status = 409
    code = "job_not_ready"


def container_name(job_id: str) -> str:
    return f"dockyard-{job_id}"


@dataclass(frozen=True)
class ManagedContainer:
    id: str
    name: str
    labels: dict[str, str]
    running: bool
    created: float  # epoch seconds


@dataclass(frozen=True)
class ManagedVolume:
    name: str
    labels: dict[str, str]


def _require_image(client: docker.DockerClient, image: str) -> None:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound as e:
        raise ImageMissing(
            f"sandbox image {image} is not built; run `dockyard images build`", {"image": image}
        ) from e


class DockerBackend:
    def __init__(
        self,
        *,
        exec_threads: int = 16,
        run_threads: int = 4,
        control_threads: int = 8,
        job_exec_slots: int = 4,
        client_timeout: float = 120.0,
        instance: str | None = None,
    ):
        # Every container and volume this backend makes carries dockyard.managed (and the instance).
        self._own_labels = {MANAGED_LABEL: "true", **({INSTANCE_LABEL: instance} if instance else {})}
        self._exec_pool = ThreadPoolExecutor(max_workers=exec_threads, thread_name_prefix="docker-exec")
        self._run_pool = ThreadPoolExecutor(max_workers=run_threads, thread_name_prefix="docker-run")
        self._control_pool = ThreadPoolExecutor(max_workers=control_threads, thread_name_prefix="docker-ctl")
        self._probe_pool = ThreadPoolExecutor(max_workers=PROBE_THREADS, thread_name_prefix="docker-probe")
        self._pools = (self._exec_pool, self._run_pool, self._control_pool, self._probe_pool)
        self._connections = exec_threads + run_threads + control_threads + PROBE_THREADS
        self._job_exec_slots = job_exec_slots
        self._job_slots: dict[str, asyncio.Semaphore] = {}
        self._timeout = client_timeout
        self._client: docker.DockerClient | None = None
        self._lock = threading.Lock()

    # --- plumbing ------------------------------------------------------------------------------

    def client(self) -> docker.DockerClient:
        with self._lock:
            if self._client is None:
                try:
                    self._client = docker.DockerClient.from_env(
                        version="auto", timeout=int(self._timeout), max_pool_size=self._connections
                    )
                except docker.errors.DockerException as e:
                    raise DockerUnavailable(f"the Docker engine is unreachable: {e}") from e
            return self._client

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One blocking docker-py call in `pool`, engine failures mapped to typed errors."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, lambda: fn(*args, **kwargs))
        except (requests.exceptions.ConnectionError, ConnectionError) as e:
            with self._lock:
                self._client = None
            raise DockerUnavailable("the Docker engine is unreachable") from e
        except requests.exceptions.Timeout as e:  # a hung engine: a fresh client next time
            with self._lock:
                self._client = None
            raise DockerUnavailable("the Docker engine did not answer in time") from e
        except docker.errors.DockerException as e:
            if "Connection" in str(e) or "connect" in str(e):
                with self._lock:
                    self._client = None
                raise DockerUnavailable(f"the Docker engine is unreachable: {e}") from e
            # Any other refusal of the engine's (a volume still busy, a conflict): a typed error.
            explanation = getattr(e, "explanation", None) or str(e)
            raise SandboxFailed(f"the Docker engine refused: {explanation}", {}) from e

    def _slots(self, container_id: str) -> asyncio.Semaphore:
        """The job's exec slots: at most `job_exec_slots` of its execs hold exec-pool threads."""
        slots = self._job_slots.get(container_id)
        if slots is None:
            slots = self._job_slots[container_id] = asyncio.Semaphore(self._job_exec_slots)
        return slots

    async def close(self) -> None:
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    async def ping(self) -> None:
        await self._run(self._probe_pool, lambda: self.client().ping())

    async def image_present(self, tag: str) -> bool:
        def check() -> bool:
            try:
                self.client().images.get(tag)
                return True
            except docker.errors.ImageNotFound:
                return False

        return await self._run(self._probe_pool, check)

    # --- lifecycle -----------------------------------------------------------------------------

    def _host_config(
        self,
        limits: Limits,
        *,
        volume: str | None,
        workspace_read_only: bool,
        nofile: int,
        fsize_bytes: int,
        tmp_mb: int,
        log_max_mb: int,
        runtime: str | None,
        extra_mounts: tuple[VolumeMount, ...] = (),
        network: str = "none",
        tmp_exec: bool = False,
    ) -> dict[str, Any]:
        """THE hardening template: every container dockyard starts gets exactly this.

        `network` is "none" for every box but a dependency fetch box and the egress proxy (an
        internal network whose only way out is that proxy); `volume` None only for the proxy.
        """
        workspace = (
            [Mount(target=WORKSPACE, source=volume, type="volume", read_only=workspace_read_only)]
            if volume is not None
            else []
        )
        memory_mb = box_memory_mb(limits, tmp_mb, writes_workspace=not workspace_read_only)
        return self.client().api.create_host_config(
            network_mode=network,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"],
            read_only=True,
            init=True,
            privileged=False,
            mem_limit=f"{memory_mb}m",
            memswap_limit=f"{memory_mb}m",
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids,
            ulimits=[
                Ulimit(name="nofile", soft=nofile, hard=nofile),
                Ulimit(name="fsize", soft=fsize_bytes, hard=fsize_bytes),
                Ulimit(name="core", soft=0, hard=0),
            ],
            tmpfs={"/tmp": f"rw,{'exec,' if tmp_exec else ''}nosuid,nodev,size={tmp_mb}m,mode=1777"},
            mounts=[
                *workspace,
                *(
                    Mount(target=m.target, source=m.source, type="volume", read_only=m.read_only)
                    for m in extra_mounts
                ),
            ],
            log_config=LogConfig(type="json-file", config={"max-size": f"{log_max_mb}m", "max-file": "1"}),
            runtime=runtime,
            ipc_mode="private",
        )

    def _create_blocking(self, spec: BoxSpec) -> Box:
        """The volume and the started box (lifecycle: short engine calls); the tree comes after."""
        client = self.client()
        name = container_name(spec.job_id)
        uid, _, gid = spec.user.partition(":")
        labels = {
            **spec.labels,
            **self._own_labels,
            JOB_LABEL: spec.job_id,
            EXPIRES_LABEL: spec.expires_at.isoformat().replace("+00:00", "Z"),
        }
        _require_image(client, spec.image)
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
                command=["sleep", "infinity"],
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
            raise PayloadTooLarge(
                f"the repository does not fit the job's disk cap ({spec.limits.disk_mb} MB)",
                {"disk_mb": spec.limits.disk_mb},
            )
        if result.timed_out:
            raise SandboxFailed(
                f"unpacking the workspace took longer than {spec.unpack_timeout_s:g} s",
                {"timeout_s": spec.unpack_timeout_s},
            )
        first = (said.strip().splitlines() or [f"exit {result.exit_code}"])[0][:300]
        raise SandboxFailed(f"unpacking the workspace failed: {first}", {"exit_code": result.exit_code})

    async def create(self, spec: BoxSpec, workspace_tar: Path) -> Box:
        """Create and start the box (control pool), then unpack the tree in it: an exec of the
        job's own (exec pool, one of its slots), so a big tree never holds a lifecycle worker."""
        box = await self._run(self._control_pool, self._create_blocking, spec)
        try:
            async with self._slots(box.container_id):
                await self._run(self._exec_pool, self._unpack_blocking, box.container_id, spec, workspace_tar)
        except BaseException:
            with contextlib.suppress(DockyardError):  # the original error is the answer; the reaper sweeps
                await self.destroy(box.container_id, box.volume)
            raise
        return box

    def _destroy_blocking(self, container_id: str | None, volume: str | None) -> None:
        client = self.client()
        if container_id:
            try:
                client.api.remove_container(container_id, force=True, v=False)
            except docker.errors.NotFound:
                pass
        if volume:
            for attempt in range(20):
                try:
                    client.api.remove_volume(volume, force=True)
                    break
                except docker.errors.NotFound:
                    break
                except docker.errors.APIError as e:
                    if e.status_code == 409 and attempt < 19:  # still in use while the container goes
                        time.sleep(0.1)
                        continue
                    raise

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

    async def list_managed(self) -> tuple[list[ManagedContainer], list[ManagedVolume]]:
        """Every container (running or not) and volume labelled dockyard.managed, any instance's."""

        def fetch() -> tuple[list[ManagedContainer], list[ManagedVolume]]:
            api = self.client().api
            flt = {"label": f"{MANAGED_LABEL}=true"}
            containers = [
                ManagedContainer(
                    id=c["Id"],
                    name=(c.get("Names") or ["/"])[0].lstrip("/"),
                    labels=dict(c.get("Labels") or {}),
                    running=c.get("State") == "running",
                    created=float(c.get("Created") or 0),
                )
                for c in api.containers(all=True, filters=flt)
            ]
            volumes = [
                ManagedVolume(name=v["Name"], labels=dict(v.get("Labels") or {}))
                for v in (api.volumes(filters=flt).get("Volumes") or [])
            ]
            return containers, volumes

        return await self._run(self._control_pool, fetch)

    async def inspect(self, container_id: str) -> dict[str, Any]:
        return await self._run(self._control_pool, lambda: self.client().api.inspect_container(container_id))

    # --- exec ----------------------------------------------------------------------------------

    def _oom_since(self, container_id: str) -> Callable[[float], bool]:
        def check(since: float) -> bool:
            events = self.client().api.events(
                since=int(since),
                until=int(time.time()) + 1,
                filters={"container": container_id, "event": "oom"},
                decode=True,
            )
            return any(True for _ in events)

        return check

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

    def _run_blocking(self, spec: RunSpec) -> ExecResult:
        client = self.client()
        _require_image(client, spec.image)
        created = client.api.create_container(
            spec.image,
            command=spec.argv,
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
                tmp_exec=spec.tmp_exec,
            ),
        )
        container_id = created["Id"]
        try:
            return run_container(
                client.api,
                container_id,
                spec.argv,
                timeout_s=spec.timeout_s,
                output_cap=spec.output_cap,
                oom_since=self._oom_since(container_id),
            )
        finally:
            try:
                client.api.remove_container(container_id, force=True)
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

    # --- dependency environments ---------------------------------------------------------------
    # The boxes of service/env/: an internal network + the egress proxy on it and on the default
    # bridge, env volumes (plain local driver: a tmpfs volume would vanish when unmounted), and a
    # one-shot build box with input files put in before it starts. Same _host_config as every box.

    async def env_network(self, name: str, labels: dict[str, str]) -> None:
        def ensure() -> None:
            api = self.client().api
            if any(n["Name"] == name for n in api.networks(names=[name])):
                return
            try:
                api.create_network(name, driver="bridge", internal=True, labels=labels, check_duplicate=True)
            except docker.errors.APIError as e:
                if e.status_code != 409:
                    raise

        await self._run(self._control_pool, ensure)

    def _env_proxy_blocking(
        self, name: str, image: str, network: str, labels: dict[str, str], limits: Limits
    ) -> None:
        client = self.client()
        api = client.api
        try:
            info = api.inspect_container(name)
            if info["State"]["Running"]:
                return
            api.remove_container(name, force=True)
        except docker.errors.NotFound:
            pass
        _require_image(client, image)
        subnets = [c["Subnet"] for c in api.inspect_network(network)["IPAM"]["Config"] if c.get("Subnet")]
        created = api.create_container(
            image,
            name=name,
            user="1000:1000",
            hostname="egress-proxy",
            labels=labels,
            environment={"DOCKYARD_PROXY_CLIENTS": " ".join(subnets)},  # the only clients it serves
            host_config=self._host_config(
                limits,
                volume=None,
                workspace_read_only=True,
                nofile=1024,
                fsize_bytes=16 * 1024 * 1024,
                tmp_mb=16,
                log_max_mb=5,
                runtime=None,
                network=network,
            ),
        )
        try:
            api.connect_container_to_network(created["Id"], "bridge")
            api.start(created["Id"])
        except BaseException:
            api.remove_container(created["Id"], force=True)
            raise

    async def env_proxy(
        self, name: str, image: str, network: str, labels: dict[str, str], limits: Limits
    ) -> None:
        await self._run(self._control_pool, self._env_proxy_blocking, name, image, network, labels, limits)

    async def env_volume_create(self, name: str, labels: dict[str, str]) -> None:
        await self._run(
            self._control_pool, lambda: self.client().volumes.create(name=name, driver="local", labels=labels)
        )

    async def env_volume_remove(self, name: str) -> None:
        await self._run(self._control_pool, self._destroy_blocking, None, name)

    async def env_volumes(self, label: str) -> list[EnvVolume]:
        def fetch() -> list[EnvVolume]:
            found = self.client().api.volumes(filters={"label": label}).get("Volumes") or []
            return [EnvVolume(name=v["Name"], labels=dict(v.get("Labels") or {})) for v in found]

        return await self._run(self._control_pool, fetch)

    def _env_run_blocking(self, spec: EnvRunSpec) -> ExecResult:
        client = self.client()
        _require_image(client, spec.image)
        created = client.api.create_container(
            spec.image,
            command=spec.argv,
            name=spec.name,
            user=spec.user,
            working_dir=WORKSPACE,
            hostname="sandbox",
            labels=spec.labels,
            environment=spec.env,
            network_disabled=spec.network == "none",
            host_config=self._host_config(
                spec.limits,
                volume=spec.workspace_volume,
                workspace_read_only=False,
                nofile=spec.nofile,
                fsize_bytes=spec.limits.disk_mb * 1024 * 1024,
                tmp_mb=spec.tmp_mb,
                log_max_mb=1,
                runtime=None,
                extra_mounts=spec.mounts,
                network=spec.network,
            ),
        )
        container_id = created["Id"]
        try:
            client.api.put_archive(container_id, WORKSPACE, spec.inputs)
            return run_container(
                client.api,
                container_id,
                spec.argv,
                timeout_s=spec.timeout_s,
                output_cap=spec.output_cap,
                oom_since=self._oom_since(container_id),
            )
        finally:
            try:
                client.api.remove_container(container_id, force=True)
            except docker.errors.NotFound:
                pass

    async def env_run(self, spec: EnvRunSpec) -> ExecResult:
        return await self._run(self._run_pool, self._env_run_blocking, spec)

    async def env_cleanup(self, label: str, *, network: str | None) -> None:
        def clean() -> None:
            api = self.client().api
            for c in api.containers(all=True, filters={"label": label}):
                try:
                    api.remove_container(c["Id"], force=True)
                except docker.errors.NotFound:
                    pass
            if network is not None:
                for n in api.networks(names=[network]):
                    if n["Name"] != network:
                        continue
                    try:
                        api.remove_network(n["Id"])
                    except docker.errors.NotFound:
                        pass

        await self._run(self._control_pool, clean)


    # --- linter boxes --------------------------------------------------------------------------

    def _linter_box_blocking(self, spec: RunSpec) -> str:
        """A long-lived linter box: hardened like every box, the workspace read-only, idle until
        each linter run execs into it (the caller resets processes and /tmp between runs)."""
        client = self.client()
        _require_image(client, spec.image)
        created = client.api.create_container(
            spec.image,
            command=["sleep", "infinity"],
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
            ),
        )
        container_id: str = created["Id"]
        try:
            client.api.start(container_id)
        except BaseException:
            self._destroy_blocking(container_id, None)
            raise
        return container_id

    async def create_linter_box(self, spec: RunSpec) -> str:
        """Start a linter box (spec.argv is unused: runs are execs); remove it with destroy()."""
        return await self._run(self._control_pool, self._linter_box_blocking, spec)
