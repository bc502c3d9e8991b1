"""What the job service needs of the dependency environments (service/env/): the job service
sits below them, so it names only this shape, and the app hands it the EnvService."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from service.models import EnvState
from service.sandbox.backend import VolumeMount


class Environments(Protocol):
    async def prepare(self, job_id: str, checkout_dir: Path, image_tag: str, language: str) -> EnvState:
        """Read the manifests out of the checkout now; the build goes on in the background."""
        ...

    def mount(self, state: EnvState | None) -> VolumeMount | None:
        """The /env mount for a job box: only when the environment is ready."""
        ...

    def state(self, job_id: str) -> EnvState | None: ...

    async def wait(self, job_id: str) -> EnvState | None:
        """The job's state once its build (if any) has ended."""
        ...

    def forget(self, job_id: str) -> None: ...
