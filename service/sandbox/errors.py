"""What a sandbox backend raises: neutral failures, no HTTP status, no contract code.

Whichever backend runs the boxes (Docker today) raises these; `service.errors.contract` is the
one place they become the contract's typed errors (`BackendUnavailable` → 503
`docker_unavailable`, …), and the HTTP edge maps any that reach it the same way.
"""

from __future__ import annotations

from typing import Any


class SandboxError(Exception):
    """A backend could not do what was asked (the base of every backend failure)."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}


class BackendUnavailable(SandboxError):
    """The backend (the engine, the cluster) is unreachable or did not answer in time."""


class SandboxGone(SandboxError):
    """The box is no longer there (removed or stopped behind our back)."""


class ImageNotBuilt(SandboxError):
    """The box's image is not present where boxes run."""


class WorkspaceTooLarge(SandboxError):
    """The workspace does not fit the box's disk cap."""


class BackendRefused(SandboxError):
    """The backend refused a request (a volume still busy, a conflict) or a box misbehaved."""
