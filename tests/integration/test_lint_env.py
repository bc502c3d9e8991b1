"""A job's dependency environment (mounted read-only at /env) supplies the repository's own tool:
the linter service picks it when it is there and says so (`tool_source`, `version`), and falls
back to the image's tool when it is not. Real engine, real images; the job service around the
lint service is a minimal stand-in (the environment builder that will hand over ToolEnv is
another module's)."""

from __future__ import annotations

import asyncio
import secrets
from types import SimpleNamespace
from typing import Any

import pytest

from service.audit import Actor
from service.images import resolve_images
from service.lint.detect import select
from service.lint.runner import LintService, ToolEnv
from service.sandbox.docker import DockerBackend
from service.settings import Limits, Settings, load_images_config
from service.store import JobRecord
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.docker

# The repository's "own" ruff: pinned to another version than the image's (it forwards to it).
REPO_RUFF = (
    '#!/bin/sh\nif [ "$1" = --version ]; then echo "ruff 0.0.1-repo"; exit 0; fi\n'
    'exec /opt/lint/bin/ruff "$@"\n'
)


class _Store:
    def __init__(self) -> None:
        self.audits: list[Any] = []

    async def audit(self, entry: Any) -> None:
        self.audits.append(entry)


def _fill(docker_client: Any, image: str, volume: str, script: str) -> None:
    docker_client.containers.run(
        image,
        ["sh", "-c", script],
        user="0",
        remove=True,
        network_mode="none",
        volumes={volume: {"bind": "/v", "mode": "rw"}},
    )


@pytest.fixture
def stand_in(docker_client: Any) -> Any:
    config_path = REPO_ROOT / "sandbox-images" / "images.toml"
    cfg = load_images_config(config_path)
    images = resolve_images(cfg, config_path, Settings())
    backend = DockerBackend(instance=f"lint-env-{secrets.token_hex(3)}")
    jobs = SimpleNamespace(
        images=SimpleNamespace(config=cfg, images=images),
        settings=SimpleNamespace(sandbox_user="1000:1000"),
        backend=backend,
        store=_Store(),
        on_end=None,
        on_closing=[],
    )
    name = f"dockyard-lintenv-{secrets.token_hex(4)}"
    ws, env = docker_client.volumes.create(f"{name}-ws"), docker_client.volumes.create(f"{name}-env")
    tag = images["python"].tag
    _fill(docker_client, tag, ws.name, "printf 'import os\\n' > /v/a.py && chmod -R a+rX /v")
    yield jobs, tag, ws.name, env.name, cfg
    asyncio.run(backend.close())
    for v in (ws, env):
        v.remove(force=True)


def _lint(jobs: Any, cfg: Any, ws: str, env: ToolEnv | None) -> Any:
    service = LintService(jobs)  # type: ignore[arg-type]
    job = JobRecord(
        id=f"job_{secrets.token_hex(8)}",
        status="ready",
        limits=cfg.limits.defaults.model_dump(),
        labels={},
        created_at=None,
        expires_at=None,
        base_sha="0" * 40,
        volume=ws,  # type: ignore[arg-type]
    )
    picks, _ = select(cfg, root_files=set(), texts={}, targets=["a.py"], requested=["ruff"])

    async def go() -> Any:
        try:
            return await service._run_linter(
                job,
                picks[0],
                {"a.py": "added"},
                {},
                Limits(**cfg.limits.defaults.model_dump()),
                env,
                asyncio.Semaphore(1),
                Actor("t", "bot"),
            )
        finally:
            await service._drop_job(job.id)

    return asyncio.run(go())


def test_the_repos_own_tool_runs_from_its_environment(stand_in: Any, docker_client: Any) -> None:
    jobs, tag, ws, env, cfg = stand_in
    _fill(
        docker_client,
        tag,
        env,
        f"mkdir -p /v/venv/bin && printf '%s' '{REPO_RUFF}' > /v/venv/bin/ruff "
        "&& chmod -R a+rX /v && chmod a+x /v/venv/bin/ruff",
    )
    run = _lint(jobs, cfg, ws, ToolEnv(volume=env, key="env-1"))
    assert (run.tool_source, run.version) == ("repo", "ruff 0.0.1-repo")
    assert run.command[0] == "/env/venv/bin/ruff"
    assert [(d.path, d.line, d.code) for d in run.diagnostics] == [("a.py", 1, "F401")]


def test_an_environment_without_the_tool_falls_back_to_the_image(stand_in: Any, docker_client: Any) -> None:
    jobs, tag, ws, env, cfg = stand_in
    _fill(docker_client, tag, env, "mkdir -p /v/venv/bin && chmod -R a+rX /v")  # no ruff in it
    run = _lint(jobs, cfg, ws, ToolEnv(volume=env, key="env-2"))
    assert run.tool_source == "image" and run.command[0] == "ruff"
    assert run.version is not None and run.version.startswith("ruff ") and "repo" not in run.version
    assert [(d.path, d.line, d.code) for d in run.diagnostics] == [("a.py", 1, "F401")]
    assert docker_client.containers.list(all=True, filters={"label": "dockyard.lint=box", "volume": ws}) == []


def test_the_repos_eslint_and_its_config_package_from_node_modules(stand_in: Any, docker_client: Any) -> None:
    jobs, _, _, env, cfg = stand_in
    node = jobs.images.images["node"].tag
    name = f"dockyard-lintenv-{secrets.token_hex(4)}-ws"
    ws = docker_client.volumes.create(name)
    try:
        # The repo's flat config imports its own shared config package (ESM: NODE_PATH does not apply).
        _fill(
            docker_client,
            node,
            ws.name,
            "printf 'import acme from \"@acme/eslint-config\";\\nexport default [acme];\\n'"
            " > /v/eslint.config.mjs"
            " && printf 'const unused = 1;\\n' > /v/a.js && chmod -R a+rX /v",
        )
        # Its environment: the package, and its eslint (here the image's, linked in as the repo's).
        _fill(
            docker_client,
            node,
            env,
            "mkdir -p /v/node_modules/@acme/eslint-config /v/node_modules/.bin"
            ' && printf \'{"name": "@acme/eslint-config", "type": "module", "main": "index.js"}\''
            " > /v/node_modules/@acme/eslint-config/package.json"
            ' && printf \'export default {rules: {"no-unused-vars": "error"}};\\n\''
            " > /v/node_modules/@acme/eslint-config/index.js"
            " && ln -s /opt/eslint/node_modules/eslint/bin/eslint.js /v/node_modules/.bin/eslint"
            " && chmod -R a+rX /v",
        )
        service = LintService(jobs)
        job = JobRecord(
            id=f"job_{secrets.token_hex(8)}",
            status="ready",
            limits=cfg.limits.defaults.model_dump(),
            labels={},
            created_at=None,  # type: ignore[arg-type]
            expires_at=None,  # type: ignore[arg-type]
            base_sha="0" * 40,
            volume=ws.name,
        )
        picks, _ = select(cfg, root_files={"eslint.config.mjs"}, texts={}, targets=["a.js"], requested=None)
        assert [p.name for p in picks] == ["eslint"]

        async def go() -> Any:
            try:
                return await service._run_linter(
                    job,
                    picks[0],
                    {"a.js": "added"},
                    {},
                    Limits(**cfg.limits.defaults.model_dump()),
                    ToolEnv(volume=env, key="env-node"),
                    asyncio.Semaphore(1),
                    Actor("t", "bot"),
                )
            finally:
                await service._drop_job(job.id)

        run = asyncio.run(go())
        assert run.error is None, run.output
        assert run.tool_source == "repo" and run.command[0] == "/env/node_modules/.bin/eslint"
        assert [(d.path, d.line, d.code) for d in run.diagnostics] == [("a.js", 1, "no-unused-vars")]
    finally:
        ws.remove(force=True)
