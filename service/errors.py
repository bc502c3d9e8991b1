"""Typed errors, each carrying its HTTP status and contract code.

The ONE place a failure becomes a wire error is `service.api.middleware`; everything below the
HTTP edge raises these (or lets an unexpected exception become `500 internal_error`). A sandbox
backend raises neutral errors (`service.sandbox.errors`); `contract()` below is the one mapping of
those to these.
"""

from __future__ import annotations

from typing import Any, ClassVar

from service.sandbox import errors as sandbox


class DockyardError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, details: dict[str, Any] | None = None, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}
        if code is not None:
            self.code = code  # type: ignore[misc]

    def headers(self) -> dict[str, str]:
        return {}


class InvalidRequest(DockyardError):
    status = 400
    code = "invalid_request"


class PathOutsideWorkspace(InvalidRequest):
    code = "path_outside_workspace"


class BinaryFile(InvalidRequest):
    code = "binary_file"


class InvalidPattern(InvalidRequest):
    code = "invalid_pattern"


class IsADirectory(InvalidRequest):
    code = "is_a_directory"


class CloneSourceForbidden(InvalidRequest):
    code = "clone_source_forbidden"


class NotAFile(InvalidRequest):
    code = "not_a_file"


class NotADirectory(InvalidRequest):
    code = "not_a_directory"


class Unauthorized(DockyardError):
    status = 401
    code = "unauthorized"


class Forbidden(DockyardError):
    status = 403
    code = "forbidden"


class BranchProtected(Forbidden):
    code = "branch_protected"


class NotFound(DockyardError):
    status = 404
    code = "not_found"


class JobNotFound(NotFound):
    code = "job_not_found"


class FileNotFound(NotFound):
    code = "file_not_found"


class MethodNotAllowed(DockyardError):
    status = 405
    code = "method_not_allowed"


class Conflict(DockyardError):
    status = 409
    code = "conflict"


class JobNotReady(Conflict):
    code = "job_not_ready"


class EditMismatch(Conflict):
    code = "edit_mismatch"


class FileExists(Conflict):
    code = "file_exists"


class IdempotencyConflict(Conflict):
    """An Idempotency-Key reused with another body (or on another operation) than its first use."""

    code = "idempotency_conflict"


class PayloadTooLarge(DockyardError):
    status = 413
    code = "payload_too_large"


class RepoTooLarge(PayloadTooLarge):
    """A repository over a clone cap (size, entries, depth, name length), refused before checkout."""

    code = "repo_too_large"


class TooManyRequests(DockyardError):
    """A cap was reached; the same call may succeed after `Retry-After` seconds."""

    status = 429
    code = "too_many_requests"

    def __init__(self, message: str, retry_after_s: int, details: dict[str, Any] | None = None):
        super().__init__(message, details)
        self.retry_after_s = retry_after_s

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_s)}


class TooManyJobs(TooManyRequests):
    code = "too_many_jobs"


class HostCapacity(TooManyRequests):
    """The host has not enough memory left for the job's caps (memory, workspace, /tmp)."""

    code = "host_capacity_exhausted"


class TooManyStreams(TooManyRequests):
    code = "too_many_streams"


class CloneFailed(DockyardError):
    status = 502
    code = "clone_failed"


class DockerUnavailable(DockyardError):
    status = 503
    code = "docker_unavailable"


class ImageMissing(DockyardError):
    status = 503
    code = "image_missing"


class SandboxFailed(DockyardError):
    """The box did something we cannot make sense of (not the caller's fault)."""

    status = 500
    code = "sandbox_error"


class RepoNotFound(NotFound):
    code = "repo_not_found"


class RefNotFound(NotFound):
    code = "ref_not_found"


class NothingToCommit(Conflict):
    code = "nothing_to_commit"


class CommitConflict(Conflict):
    code = "commit_conflict"


class GitHubError(DockyardError):
    """The git host answered with an error (after retries), or not at all."""

    status = 502
    code = "github_error"


class GitHubNotConfigured(InvalidRequest):
    code = "github_not_configured"


def codes_by_status() -> dict[int, list[str]]:
    """Every contract code this module declares, by its HTTP status (the error classes are the one
    declaration; `/openapi.json` enumerates these per status)."""
    found: dict[int, set[str]] = {}
    todo: list[type[DockyardError]] = [DockyardError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.status, set()).add(cls.code)
        todo.extend(cls.__subclasses__())
    return {status: sorted(codes) for status, codes in sorted(found.items())}


# --- the sandbox backend's neutral failures → the contract -----------------------------------

_SANDBOX: tuple[tuple[type[sandbox.SandboxError], type[DockyardError]], ...] = (
    (sandbox.BackendUnavailable, DockerUnavailable),  # the contract keeps the code docker_unavailable
    (sandbox.SandboxGone, JobNotReady),
    (sandbox.ImageNotBuilt, ImageMissing),
    (sandbox.WorkspaceTooLarge, PayloadTooLarge),
    (sandbox.SandboxError, SandboxFailed),
)


def contract(e: DockyardError | sandbox.SandboxError) -> DockyardError:
    """The contract's typed error for a failure: a DockyardError as it is, a backend's neutral
    error as the one it stands for (the neutral one as its cause)."""
    if isinstance(e, DockyardError):
        return e
    for neutral, typed in _SANDBOX:
        if isinstance(e, neutral):
            mapped = typed(e.message, e.details)
            mapped.__cause__ = e
            return mapped
    raise AssertionError("unreachable: SandboxError is the last row")  # pragma: no cover


# Every typed failure below the HTTP edge: `except FAILURES as e` then `contract(e)` for its code.
FAILURES: tuple[type[DockyardError], type[sandbox.SandboxError]] = (DockyardError, sandbox.SandboxError)
