"""The Docker engine plumbing every part of the backend shares: one client, bounded thread pools,
engine failures mapped to neutral errors (`service.sandbox.errors`), THE hardening template.

Hardening lives here and only here: the HostConfig is built from a fixed template, never from
caller input. Why docker-py and not aiodocker: the tests drive the same SDK, its hijacked exec
socket gives us stdin with a clean half-close (write_file, replace_in_file), and the one weakness
of threads — a blocked call cannot be cancelled — is covered by the in-box `timeout -s KILL` and
the host-side deadline in `execs.py`, so no pool thread is held past a tool's timeout + grace.

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
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Mount, Ulimit

from service.sandbox.backend import VolumeMount, box_memory_mb
from service.sandbox.errors import BackendRefused, BackendUnavailable, ImageNotBuilt
from service.sandbox.labels import INSTANCE_LABEL, MANAGED_LABEL
from service.settings import Limits

T = TypeVar("T")

PROBE_THREADS = 2  # readiness probes (ping, image checks): never queued behind the other pools
WORKSPACE = "/workspace"


def require_image(client: docker.DockerClient, image: str) -> None:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound as e:
        raise ImageNotBuilt(
            f"sandbox image {image} is not built; run `dockyard images build`", {"image": image}
        ) from e


class Engine:
    """docker-py in bounded pools; the parts (env.py, boxes.py) build on it."""

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
                    raise BackendUnavailable(f"the Docker engine is unreachable: {e}") from e
            return self._client

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One blocking docker-py call in `pool`, engine failures mapped to typed errors."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(pool, lambda: fn(*args, **kwargs))
        except (requests.exceptions.ConnectionError, ConnectionError) as e:
            with self._lock:
                self._client = None
            raise BackendUnavailable("the Docker engine is unreachable") from e
        except requests.exceptions.Timeout as e:  # a hung engine: a fresh client next time
            with self._lock:
                self._client = None
            raise BackendUnavailable("the Docker engine did not answer in time") from e
        except docker.errors.DockerException as e:
            if "Connection" in str(e) or "connect" in str(e):
                with self._lock:
                    self._client = None
                raise BackendUnavailable(f"the Docker engine is unreachable: {e}") from e
            # Any other refusal of the engine's (a volume still busy, a conflict): a typed error.
            explanation = getattr(e, "explanation", None) or str(e)
            raise BackendRefused(f"the Docker engine refused: {explanation}", {}) from e

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
