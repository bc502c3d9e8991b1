"""The environment cache and EnvService's bookkeeping, over a fake backend (no engine): LRU
eviction within the size budget, one build per key however many jobs ask, states that never raise."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from service.env.cache import CacheEntry, EnvCache
from service.env.service import EnvService
from service.jobs import JobService
from service.sandbox.backend import EnvRunSpec, EnvVolume, ExecResult
from service.sandbox.errors import BackendRefused
from service.settings import Settings


class FakeBackend:
    def __init__(self, busy: set[str] | None = None, exit_code: int = 0):
        self.busy = busy or set()
        self.exit_code = exit_code
        self.volumes: dict[str, dict[str, str]] = {}
        self.runs: list[EnvRunSpec] = []
        self.removed: list[str] = []

    async def env_network(self, name: str, labels: dict[str, str]) -> None:
        return None

    async def env_proxy(self, *args: Any) -> None:
        return None

    async def env_volume_create(self, name: str, labels: dict[str, str]) -> None:
        self.volumes[name] = labels

    async def env_volume_remove(self, name: str) -> None:
        if name in self.busy:
            raise BackendRefused("volume in use", {})
        self.volumes.pop(name, None)
        self.removed.append(name)

    async def env_volumes(self, label: str) -> list[EnvVolume]:
        k, _, v = label.partition("=")
        return [EnvVolume(n, lab) for n, lab in self.volumes.items() if lab.get(k) == v]

    async def env_run(self, spec: EnvRunSpec) -> ExecResult:
        self.runs.append(spec)
        await asyncio.sleep(0.05)
        out = b"DOCKYARD_ENV_KB=2048\n" if self.exit_code == 0 else b""
        err = b"" if self.exit_code == 0 else b"ERROR: No matching distribution found for docopt==0.6.2\n"
        return ExecResult(spec.argv, self.exit_code, out, err, 50, 0, len(out))

    async def env_cleanup(self, label: str, *, network: str | None) -> None:
        return None


def service(tmp_path: Path, backend: FakeBackend, **settings: Any) -> tuple[EnvService, list[Any]]:
    audits: list[Any] = []

    async def audit(entry: Any) -> None:
        audits.append(entry)

    s = Settings(state_dir=tmp_path / "state", api_tokens="t" * 20 + ":bot", env_ca_bundle=None, **settings)
    images = {n: SimpleNamespace(tag=f"dockyard/{n}:1") for n in ("python", "env-python", "proxy", "node")}
    jobs = SimpleNamespace(
        settings=s, backend=backend, images=SimpleNamespace(images=images), store=SimpleNamespace(audit=audit)
    )
    return EnvService(cast(JobService, jobs), "dy-test"), audits


async def test_cache_rows_and_lru_order(tmp_path: Path) -> None:
    cache = await EnvCache.open(tmp_path)
    try:
        now = time.time()
        for i, key in enumerate("abc"):
            await cache.put(
                CacheEntry(key, f"v-{key}", "python", "ready", size_mb=1.0, last_used=now - 100 + i)
            )
        await cache.put(CacheEntry("f", "v-f", "python", "failed", reason="no wheel"))
        await cache.touch("a")
        assert [e.key for e in await cache.ready_lru()] == ["b", "c", "a"]
        got = await cache.get("f")
        assert got is not None and got.status == "failed" and got.reason == "no wheel"
        await cache.delete("b")
        assert await cache.get("b") is None
    finally:
        await cache.close()


async def test_gc_evicts_least_recently_used_and_skips_a_mounted_volume(tmp_path: Path) -> None:
    backend = FakeBackend(busy={"v-a"})
    env, _ = service(tmp_path, backend, env_cache_mb=64)
    await env.start()
    try:
        now = time.time()
        for i, key in enumerate("abcd"):
            backend.volumes[f"v-{key}"] = {}
            await env.cache.put(
                CacheEntry(key, f"v-{key}", "python", "ready", size_mb=30.0, last_used=now + i)
            )
        await env._gc(keep="d")
        # 120 MB over a 64 MB budget: a is mounted (skipped), b and c go, d was just built.
        assert backend.removed == ["v-b", "v-c"]
        assert [e.key for e in await env.cache.ready_lru()] == ["a", "d"]
    finally:
        await env.close()


def checkout(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "checkout"
    root.mkdir(exist_ok=True)
    for rel, text in files.items():
        (root / rel).write_text(text)
    return root


async def test_one_build_per_key_then_a_hit(tmp_path: Path) -> None:
    backend = FakeBackend()
    env, audits = service(tmp_path, backend)
    await env.start()
    try:
        root = checkout(tmp_path, {"requirements.txt": "six==1.16.0\n"})
        states = await asyncio.gather(
            *(env.prepare(f"j{i}", root, "dockyard/python:1", "python") for i in range(5))
        )
        assert {s.status for s in states} == {"building"} and len({s.key for s in states}) == 1
        done = await env.wait("j3")
        assert done is not None and done.status == "ready" and done.size_mb == 2.0
        assert [r.name.split("-")[2] for r in backend.runs] == ["fetch", "install"]  # once, for five jobs
        assert [a.action for a in audits] == ["env.fetch", "env.install"]
        assert backend.runs[0].network.startswith("dockyard-env-net-") and backend.runs[1].network == "none"
        again = await env.prepare("j9", root, "dockyard/python:1", "python")
        assert again.status == "ready" and len(backend.runs) == 2
        mount = env.mount(again)
        assert mount is not None and mount.target == "/env" and mount.read_only
        assert env.state("j0") == again
    finally:
        await env.close()


async def test_a_failed_fetch_is_a_state_not_an_exception(tmp_path: Path) -> None:
    backend = FakeBackend(exit_code=1)
    env, audits = service(tmp_path, backend)
    await env.start()
    try:
        root = checkout(tmp_path, {"requirements.txt": "docopt==0.6.2\n"})
        await env.prepare("j1", root, "dockyard/python:1", "python")
        state = await env.wait("j1")
        assert state is not None and state.status == "failed"
        assert state.reason is not None and "no wheel for docopt==0.6.2" in state.reason
        assert env.mount(state) is None
        assert [a.outcome for a in audits] == ["error"]
        assert not [v for v in backend.volumes if v.startswith("dockyard-env-dy-test")]  # nothing kept
        # Within the retry window the failure is answered from the cache, without a new fetch.
        again = await env.prepare("j2", root, "dockyard/python:1", "python")
        assert again.status == "failed" and len(backend.runs) == 1
    finally:
        await env.close()


@pytest.mark.parametrize(
    ("language", "files", "reason"),
    [
        ("shell", {"a.sh": ""}, "no dependency manifest"),
        ("node", {"package.json": "{}", "yarn.lock": ""}, "yarn.lock is not supported"),
        ("python", {"requirements.txt": "--index-url https://evil.invalid/\n"}, "nothing to fetch"),
    ],
)
async def test_nothing_to_build_is_none_with_a_reason(
    tmp_path: Path, language: str, files: dict[str, str], reason: str
) -> None:
    backend = FakeBackend()
    env, _ = service(tmp_path, backend)
    await env.start()
    try:
        await env.prepare("j1", checkout(tmp_path, files), f"dockyard/{language}:1", language)
        state = await env.wait("j1")
        assert state is not None and state.status == "none" and reason in (state.reason or "")
        assert backend.runs == []
    finally:
        await env.close()
