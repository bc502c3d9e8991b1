"""EnvService: a job's dependency environment, from its manifests to a read-only /env mount.

`prepare` reads the manifests out of the checkout (before the checkout is deleted), computes the
key, and answers at once: `ready` on a cache hit, `none` when there is nothing to build (or it is
unsupported, said in `reason`), else `building` while one background build per key runs
(concurrent jobs with the same key share it). A build is: the policy (policy.py) → a fetch box
behind the egress proxy (fetch.py, audited `env.fetch`) → for Python an install box with network
none (install.py, audited `env.install`) → the cache (cache.py) and LRU eviction. A failed build
never raises to the caller: the state is `failed` with the reason, and the job goes on with the
image's own tools.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import asdict
from pathlib import Path

from service.audit import SYSTEM, AuditEntry
from service.env import fetch, install
from service.env.cache import CacheEntry, EnvCache
from service.env.egress import Egress
from service.env.manifests import Ecosystem, ManifestError, Manifests, collect
from service.env.policy import Plan, Refusal, plan
from service.errors import FAILURES, contract
from service.jobs import JobService
from service.lint.runner import ToolEnv
from service.logging import get_logger
from service.models import EnvRefusal, EnvState
from service.sandbox.backend import EnvRunSpec, ExecResult, VolumeMount
from service.sandbox.labels import MANAGED_LABEL
from service.settings import Limits
from service.store import JobRecord

log = get_logger(__name__)

ENV_TARGET = "/env"
# The env resources carry their OWN instance label, not dockyard.instance: the reaper removes any
# volume of its instance that no live job owns, and an environment outlives its jobs by design.
ENV_ROLE_LABEL = "dockyard.env"  # volume | scratch | fetch | install | probe | proxy
ENV_KEY_LABEL = "dockyard.env.key"
ENV_INSTANCE_LABEL = "dockyard.env.instance"
BUILDER_IMAGES: dict[Ecosystem, str | None] = {"python": "env-python", "node": "env-node", "go": None}
OUTPUT_CAP = 4 * 1024 * 1024
BOX_TMP_MB = 256
BOX_PIDS = 512


def _refusals(refused: list[Refusal]) -> list[EnvRefusal]:
    return [EnvRefusal(kind=r.kind, file=r.file, detail=r.detail) for r in refused]


class EnvService:
    def __init__(self, jobs: JobService, instance: str):
        self.jobs = jobs
        self.settings = jobs.settings
        self.backend = jobs.backend
        self.instance = instance
        self.egress = Egress(self.backend, instance=instance, labels=self._labels("proxy"))
        self._cache: EnvCache | None = None
        self._builds: dict[str, asyncio.Task[EnvState]] = {}
        self._states: dict[str, EnvState] = {}  # key → its latest state
        self._jobs: dict[str, EnvState | str] = {}  # job → its state (no key) or its key
        self._slots = asyncio.Semaphore(self.settings.env_max_builds)
        self._registry: dict[str, str] = {}  # env-node image tag → npm's configured registry

    # --- lifecycle -------------------------------------------------------------------------------

    def _labels(self, role: str, key: str | None = None) -> dict[str, str]:
        labels = {MANAGED_LABEL: "true", ENV_ROLE_LABEL: role, ENV_INSTANCE_LABEL: self.instance}
        return labels | ({ENV_KEY_LABEL: key} if key else {})

    @property
    def cache(self) -> EnvCache:
        assert self._cache is not None, "EnvService.start() first"
        return self._cache

    async def start(self) -> None:
        """Open the cache and remove what a crashed build of this instance left behind."""
        self._cache = await EnvCache.open(self.settings.state_dir)
        try:
            await self.backend.env_cleanup(f"{ENV_INSTANCE_LABEL}={self.instance}", network=None)
            ready = {e.volume for e in await self.cache.ready_lru()}
            for v in await self.backend.env_volumes(f"{ENV_INSTANCE_LABEL}={self.instance}"):
                if v.name not in ready:
                    await self.backend.env_volume_remove(v.name)
        except FAILURES as e:  # an engine away at start: the next build cleans up after itself
            log.warning("env_cleanup_failed", error=e.message)

    async def close(self) -> None:
        for task in self._builds.values():
            task.cancel()
        await asyncio.gather(*self._builds.values(), return_exceptions=True)
        try:
            await self.egress.close(f"{ENV_INSTANCE_LABEL}={self.instance}")
        except FAILURES as e:
            log.warning("env_close_failed", error=e.message)
        if self._cache is not None:
            await self._cache.close()

    # --- the API ---------------------------------------------------------------------------------

    def state(self, job_id: str) -> EnvState | None:
        found = self._jobs.get(job_id)
        return self._states.get(found) if isinstance(found, str) else found

    async def wait(self, job_id: str) -> EnvState | None:
        """The job's state once its build (if any) has ended."""
        found = self._jobs.get(job_id)
        if isinstance(found, str) and found in self._builds:
            await asyncio.shield(self._builds[found])
        return self.state(job_id)

    async def adopt(self, jobs: list[JobRecord]) -> int:
        """After a restart: live jobs find their environment again (from the persistent cache)."""
        found = 0
        for job in jobs:
            if job.env_key is None or job.id in self._jobs:
                continue
            try:
                state = await self._hit(job.env_key)
            except FAILURES:
                continue
            if state is not None:
                self._states.setdefault(job.env_key, state)
                self._jobs[job.id] = job.env_key
                found += 1
        return found

    async def tool_env(self, job: JobRecord) -> ToolEnv | None:
        """For lint and test boxes: the job's environment once ready, waiting for a build in
        progress (at most `env_wait_s`); None when it has none, failed, or is still building."""
        try:
            state = await asyncio.wait_for(self.wait(job.id), self.settings.env_wait_s)
        except TimeoutError:
            return None
        mount = self.mount(state)
        if mount is None or state is None or state.key is None:
            return None
        return ToolEnv(volume=mount.source, key=state.key)

    def forget(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)

    def mount(self, state: EnvState | None) -> VolumeMount | None:
        if state is None or state.status != "ready" or state.key is None:
            return None
        return VolumeMount(source=self._volume(state.key), target=ENV_TARGET, read_only=True)

    def _volume(self, key: str) -> str:
        return f"dockyard-env-{self.instance}-{key[:24]}"

    async def prepare(self, job_id: str, checkout_dir: Path, image_tag: str, language: str) -> EnvState:
        """Never raises for the repository's sake: a state says what happened."""
        if not self.settings.env_enabled:
            return self._for_job(
                job_id, EnvState(status="none", reason="dependency environments are disabled")
            )
        try:
            manifests = await asyncio.to_thread(collect, checkout_dir, language)
        except (ManifestError, OSError) as e:
            return self._for_job(job_id, EnvState(status="failed", reason=f"manifests unreadable: {e}"))
        if manifests is None:
            return self._for_job(
                job_id, EnvState(status="none", reason=f"no dependency manifest for a {language} environment")
            )
        if manifests.unsupported:
            return self._for_job(
                job_id, EnvState(status="none", ecosystem=manifests.ecosystem, reason=manifests.unsupported)
            )
        builder = BUILDER_IMAGES[manifests.ecosystem]
        images = self.jobs.images.images
        builder_tag = images[builder].tag if builder in images else image_tag if builder is None else None
        if builder_tag is None:
            return self._for_job(
                job_id,
                EnvState(
                    status="failed", ecosystem=manifests.ecosystem, reason=f"no [images.{builder}] configured"
                ),
            )
        key = await asyncio.to_thread(manifests.key, image_tag, builder_tag)  # hashes up to MiBs
        self._jobs[job_id] = key
        if key in self._builds:
            return self._states[key]
        try:
            hit = await self._hit(key)
        except FAILURES as e:  # the engine or the cache away: no environment, the job goes on
            return self._for_job(
                job_id,
                EnvState(
                    status="failed",
                    key=key,
                    ecosystem=manifests.ecosystem,
                    reason=f"environment cache unavailable: {e.message}",
                ),
            )
        if key in self._builds:  # another job of the same key started it while we looked
            return self._states[key]
        if hit is not None:
            self._states[key] = hit
            return hit
        self._states[key] = EnvState(status="building", key=key, ecosystem=manifests.ecosystem)
        task = asyncio.create_task(self._build(job_id, key, manifests, builder_tag))
        self._builds[key] = task
        task.add_done_callback(lambda _t: self._builds.pop(key, None))
        return self._states[key]

    def _for_job(self, job_id: str, state: EnvState) -> EnvState:
        self._jobs[job_id] = state
        return state

    async def _hit(self, key: str) -> EnvState | None:
        entry = await self.cache.get(key)
        if entry is None:
            return None
        if entry.status == "failed" and time.time() - entry.created_at < self.settings.env_retry_s:
            return self._from_entry(entry)
        if entry.status == "ready":
            present = await self.backend.env_volumes(f"{ENV_KEY_LABEL}={key}")
            if any(v.name == entry.volume for v in present):
                await self.cache.touch(key)
                return self._from_entry(entry)
        await self.cache.delete(key)  # a failure to retry, or a volume removed behind our back
        return None

    @staticmethod
    def _from_entry(e: CacheEntry) -> EnvState:
        return EnvState(
            status="ready" if e.status == "ready" else "failed",
            key=e.key,
            ecosystem=e.ecosystem,
            reason=e.reason,
            refused=[EnvRefusal(**r) for r in e.refused],
            duration_ms=e.duration_ms,
            size_mb=e.size_mb,
        )

    # --- one build -------------------------------------------------------------------------------

    async def _build(self, job_id: str, key: str, m: Manifests, builder_tag: str) -> EnvState:
        t0 = time.monotonic()
        volume = self._volume(key)
        refused: list[Refusal] = []
        state: EnvState
        async with self._slots:
            try:
                registry = await self._npm_registry(builder_tag) if m.ecosystem == "node" else None
                p = await asyncio.to_thread(plan, m, npm_registry=registry)  # parses lockfiles
                refused = p.refused
                if p.empty:
                    state = EnvState(
                        status="none",
                        key=key,
                        ecosystem=m.ecosystem,
                        reason=f"nothing to fetch from {p.source or 'the manifests'} after the policy",
                        refused=_refusals(refused),
                    )
                    self._states[key] = state
                    return state
                await self.backend.env_volume_create(volume, self._labels("volume", key))
                size, note = await self._run_build(job_id, key, m.ecosystem, p, volume, builder_tag)
                duration = int((time.monotonic() - t0) * 1000)
                entry = CacheEntry(
                    key=key,
                    volume=volume,
                    ecosystem=m.ecosystem,
                    status="ready",
                    reason=note,
                    refused=[asdict(r) for r in refused],
                    duration_ms=duration,
                    size_mb=size,
                )
                await self.cache.put(entry)
                state = self._from_entry(entry)
            except _BuildFailed as e:
                state = await self._failed(key, m.ecosystem, volume, e.reason, refused, t0)
            except FAILURES as e:
                state = await self._failed(key, m.ecosystem, volume, e.message, refused, t0)
            except asyncio.CancelledError:
                await self._drop_volume(volume)
                raise
            except Exception as e:  # never let a build take the job down
                log.exception("env_build_crashed", key=key)
                state = await self._failed(key, m.ecosystem, volume, f"internal error: {e}", refused, t0)
        self._states[key] = state
        log.info("env_built", key=key[:12], status=state.status, ms=state.duration_ms, reason=state.reason)
        if state.status == "ready":
            await self._gc(keep=key)
        return state

    async def _failed(
        self, key: str, ecosystem: str, volume: str, reason: str, refused: list[Refusal], t0: float
    ) -> EnvState:
        await self._drop_volume(volume)
        entry = CacheEntry(
            key=key,
            volume=volume,
            ecosystem=ecosystem,
            status="failed",
            reason=reason,
            refused=[asdict(r) for r in refused],
            duration_ms=int((time.monotonic() - t0) * 1000),
        )
        await self.cache.put(entry)
        return self._from_entry(entry)

    async def _drop_volume(self, volume: str) -> None:
        try:
            await self.backend.env_volume_remove(volume)
        except FAILURES as e:
            log.warning("env_volume_remove_failed", volume=volume, error=e.message)

    def _limits(self, timeout_s: float) -> Limits:
        return Limits(
            memory_mb=self.settings.env_memory_mb,
            cpus=1.0,
            pids=BOX_PIDS,
            disk_mb=self.settings.env_disk_mb,
            tool_timeout_s=int(timeout_s),
        )

    def _ca(self) -> bytes | None:
        path = self.settings.env_ca_bundle
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None

    async def _run_build(
        self, job_id: str, key: str, ecosystem: Ecosystem, p: Plan, volume: str, builder_tag: str
    ) -> tuple[float | None, str | None]:
        """Fetch (and install); returns (size in MB, a note for the state). Raises _BuildFailed."""
        await self.egress.ensure(self.jobs.images.images["proxy"].tag)
        ca = await asyncio.to_thread(self._ca)
        inputs = await asyncio.to_thread(fetch.input_tar, p.files, ca)
        env = fetch.box_env(self.egress.proxy_url, ca is not None)
        fetch_timeout = self.settings.env_fetch_timeout_s
        if ecosystem != "python":
            argv = fetch.node_fetch_argv() if ecosystem == "node" else fetch.go_fetch_argv()
            result = await self._box(
                job_id,
                key,
                "fetch",
                builder_tag,
                argv,
                volume,
                inputs,
                env,
                self.egress.network,
                fetch_timeout,
                (),
            )
            self._check(ecosystem, "fetch", result, fetch_timeout)
            if ecosystem == "node":
                return fetch.size_mb(result.stdout), "npm ci --ignore-scripts: package scripts were not run"
            return fetch.size_mb(
                result.stdout
            ), f"modules fetched through GOPROXY={fetch.goproxy(result.stdout)}"
        scratch = f"dockyard-env-scratch-{self.instance}-{secrets.token_hex(4)}"
        await self.backend.env_volume_create(scratch, self._labels("scratch", key))
        try:
            result = await self._box(
                job_id,
                key,
                "fetch",
                builder_tag,
                fetch.python_fetch_argv(p),
                scratch,
                inputs,
                env,
                self.egress.network,
                fetch_timeout,
                (),
            )
            self._check(ecosystem, "fetch", result, fetch_timeout)
            timeout = self.settings.env_install_timeout_s
            result = await self._box(
                job_id,
                key,
                "install",
                builder_tag,
                install.python_install_argv(p),
                scratch,
                await asyncio.to_thread(fetch.input_tar, p.files, None),
                {"HOME": "/tmp", "PIP_NO_INDEX": "1"},
                "none",
                timeout,
                (VolumeMount(source=volume, target=ENV_TARGET, read_only=False),),
            )
            self._check(ecosystem, "install", result, timeout)
            return fetch.size_mb(result.stdout), f"wheels only, from {p.source}"
        finally:
            await self._drop_volume(scratch)

    @staticmethod
    def _check(ecosystem: str, step: str, result: ExecResult, timeout_s: float) -> None:
        if result.timed_out:
            raise _BuildFailed(f"{step} ran out of time ({timeout_s:g} s)")
        if result.oom_killed:
            raise _BuildFailed(f"{step} ran out of memory")
        if result.exit_code != 0:
            reason = fetch.failure_reason(ecosystem, result.stdout, result.stderr)
            raise _BuildFailed(f"{step} failed (exit {result.exit_code}): {reason}")

    async def _box(
        self,
        job_id: str | None,
        key: str,
        step: str,
        image: str,
        argv: list[str],
        workspace: str,
        inputs: bytes,
        env: dict[str, str],
        network: str,
        timeout_s: float,
        mounts: tuple[VolumeMount, ...],
    ) -> ExecResult:
        spec = EnvRunSpec(
            name=f"dockyard-env-{step}-{key[:12]}-{secrets.token_hex(3)}",
            image=image,
            argv=argv,
            workspace_volume=workspace,
            inputs=inputs,
            limits=self._limits(timeout_s),
            labels=self._labels(step, key),
            user=self.settings.sandbox_user,
            nofile=4096,
            tmp_mb=BOX_TMP_MB,
            timeout_s=timeout_s,
            output_cap=OUTPUT_CAP,
            network=network,
            env=env,
            mounts=mounts,
        )
        try:
            result = await self.backend.env_run(spec)
        except FAILURES as e:
            await self._audit(job_id, key, step, argv, None, contract(e).code, image)
            raise
        await self._audit(job_id, key, step, argv, result, result.outcome, image)
        return result

    async def _audit(
        self,
        job_id: str | None,
        key: str,
        step: str,
        argv: list[str],
        result: ExecResult | None,
        outcome: str,
        image: str,
    ) -> None:
        if step == "probe":
            return
        await self.jobs.store.audit(
            AuditEntry(
                actor=SYSTEM,
                action=f"env.{step}",
                outcome=outcome,
                job_id=job_id,
                container_id=None,
                argv=argv,
                exit_code=result.exit_code if result else None,
                duration_ms=result.duration_ms if result else None,
                bytes_in=0,
                bytes_out=result.bytes_out if result else 0,
                details={
                    "key": key,
                    "image": image,
                    "timed_out": bool(result and result.timed_out),
                    "oom_killed": bool(result and result.oom_killed),
                },
            )
        )

    async def _npm_registry(self, builder_tag: str) -> str:
        """npm's configured registry in the env-node image (its own config, read at run time)."""
        if builder_tag not in self._registry:
            scratch = f"dockyard-env-scratch-{self.instance}-{secrets.token_hex(4)}"
            await self.backend.env_volume_create(scratch, self._labels("scratch"))
            try:
                result = await self._box(
                    None,
                    "npm-registry",
                    "probe",
                    builder_tag,
                    ["npm", "config", "get", "registry"],
                    scratch,
                    fetch.input_tar({}, None),
                    {"HOME": "/tmp"},
                    "none",
                    60,
                    (),
                )
            finally:
                await self._drop_volume(scratch)
            registry = result.stdout.decode("utf-8", "replace").strip()
            if result.exit_code != 0 or "://" not in registry:
                raise _BuildFailed(
                    f"cannot read npm's configured registry: {registry or result.stderr[-300:]!r}"
                )
            self._registry[builder_tag] = registry
        return self._registry[builder_tag]

    async def _gc(self, *, keep: str) -> None:
        """Evict least recently used environments until the cache fits its budget."""
        entries = await self.cache.ready_lru()
        total = sum(e.size_mb or 0 for e in entries)
        for e in entries:
            if total <= self.settings.env_cache_mb:
                break
            if e.key == keep or e.key in self._builds:
                continue
            try:
                await self.backend.env_volume_remove(e.volume)
            except FAILURES:
                continue  # still mounted by a box: next time
            await self.cache.delete(e.key)
            self._states.pop(e.key, None)
            total -= e.size_mb or 0
            log.info("env_evicted", key=e.key[:12], size_mb=e.size_mb)


class _BuildFailed(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
