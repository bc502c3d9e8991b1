"""WHERE a box runs: the backend interface (`backend.py`, neutral errors in `errors.py`, labels in
`labels.py`) and one package per place boxes run (`docker/`). `make_backend` picks one by settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.sandbox.backend import SandboxBackend
    from service.settings import Settings


def make_backend(settings: Settings, *, instance: str | None = None) -> SandboxBackend:
    """The backend `DOCKYARD_BACKEND` names, labelling what it makes with `instance`."""
    if settings.backend == "docker":
        from service.sandbox.docker import DockerBackend  # docker-py is loaded only when chosen

        return DockerBackend(
            exec_threads=settings.docker_exec_threads,
            run_threads=settings.docker_run_threads,
            control_threads=settings.docker_control_threads,
            job_exec_slots=settings.job_exec_concurrency,
            instance=instance,
        )
    raise AssertionError(f"unknown backend {settings.backend!r}")  # Settings' Literal forbids it
