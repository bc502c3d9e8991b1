"""One exception tree for everything that can go wrong talking to dockyard.

    DockyardError
    ├── APIError                      the service answered `{"error": {code, message, details}}`
    │   ├── InvalidRequest (400)      PathOutsideWorkspace, BinaryFile, InvalidPattern, ...
    │   ├── AuthenticationError (401)
    │   ├── Forbidden (403)           BranchProtected
    │   ├── NotFound (404)            JobNotFound, FileNotFound, RepoNotFound, RefNotFound
    │   ├── MethodNotAllowed (405)
    │   ├── Conflict (409)            JobNotReady, EditMismatch, FileExists, NothingToCommit, ...
    │   ├── PayloadTooLarge (413)     RepoTooLarge
    │   ├── RateLimited (429)         TooManyJobs, TooManyStreams, HostCapacityExhausted
    │   ├── ServerError (500, other 5xx)  SandboxError
    │   ├── UpstreamError (502)       CloneFailed, GitHubError
    │   └── ServiceUnavailable (503)  DockerUnavailable, ImageMissing
    ├── ConnectionError               the service could not be reached (also a builtin ConnectionError)
    │   └── TimeoutError              no answer in time (also a builtin TimeoutError)
    └── ResponseValidationError       an answer that is not the contract's shape

Each class declares its `STATUS` and its contract `CODE` once (an instance carries the answer's
`status` and `code`); the table
`error_class()` uses is derived from those declarations, so the mapping lives here and nowhere else.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Mapping
from typing import Any, ClassVar


class DockyardError(Exception):
    """Anything that went wrong talking to the dockyard service."""


class ConnectionError(DockyardError, builtins.ConnectionError):
    """The service could not be reached (refused, reset, DNS, TLS)."""


class TimeoutError(ConnectionError, builtins.TimeoutError):
    """The service did not answer within the timeout."""


class ResponseValidationError(DockyardError):
    """The service answered 2xx with a body that does not fit the SDK's model of it."""


class APIError(DockyardError):
    """The service answered with a contract error (`status`, `code`, `message`, `details`)."""

    STATUS: ClassVar[int] = 0  # the HTTP status (family) this class stands for; 0: any
    CODE: ClassVar[str] = ""  # the contract code this class stands for

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})


class InvalidRequest(APIError):
    STATUS = 400
    CODE = "invalid_request"


class PathOutsideWorkspace(InvalidRequest):
    CODE = "path_outside_workspace"


class BinaryFile(InvalidRequest):
    CODE = "binary_file"


class NotAFile(InvalidRequest):
    CODE = "not_a_file"


class NotADirectory(InvalidRequest):
    CODE = "not_a_directory"


class InvalidPattern(InvalidRequest):
    CODE = "invalid_pattern"


class IsADirectory(InvalidRequest):
    CODE = "is_a_directory"


class CloneSourceForbidden(InvalidRequest):
    CODE = "clone_source_forbidden"


class GitHubNotConfigured(InvalidRequest):
    CODE = "github_not_configured"


class AuthenticationError(APIError):
    STATUS = 401
    CODE = "unauthorized"


class Forbidden(APIError):
    STATUS = 403
    CODE = "forbidden"


class BranchProtected(Forbidden):
    CODE = "branch_protected"


class NotFound(APIError):
    STATUS = 404
    CODE = "not_found"


class JobNotFound(NotFound):
    CODE = "job_not_found"


class FileNotFound(NotFound):
    CODE = "file_not_found"


class RepoNotFound(NotFound):
    CODE = "repo_not_found"


class RefNotFound(NotFound):
    CODE = "ref_not_found"


class MethodNotAllowed(APIError):
    STATUS = 405
    CODE = "method_not_allowed"


class Conflict(APIError):
    STATUS = 409
    CODE = "conflict"


class JobNotReady(Conflict):
    CODE = "job_not_ready"


class EditMismatch(Conflict):
    """`replace_in_file`: `old` did not occur `expected_count` times (details list where it did)."""

    CODE = "edit_mismatch"


class FileExists(Conflict):
    CODE = "file_exists"


class NothingToCommit(Conflict):
    CODE = "nothing_to_commit"


class CommitConflict(Conflict):
    CODE = "commit_conflict"


class IdempotencyConflict(Conflict):
    """The same `Idempotency-Key` was sent with another body."""

    CODE = "idempotency_conflict"


class PayloadTooLarge(APIError):
    STATUS = 413
    CODE = "payload_too_large"


class RepoTooLarge(PayloadTooLarge):
    CODE = "repo_too_large"


class RateLimited(APIError):
    """429: a cap was reached; `retry_after_s` says when the same call may succeed."""

    STATUS = 429
    CODE = "too_many_requests"

    @property
    def retry_after_s(self) -> float | None:
        return retry_after(self.headers)


class TooManyJobs(RateLimited):
    CODE = "too_many_jobs"


class HostCapacityExhausted(RateLimited):
    CODE = "host_capacity_exhausted"


class TooManyStreams(RateLimited):
    CODE = "too_many_streams"


class ServerError(APIError):
    """500 or any 5xx the contract does not name."""

    STATUS = 500
    CODE = "internal_error"


class SandboxError(ServerError):
    CODE = "sandbox_error"


class UpstreamError(APIError):
    """502: the git host failed (clone or API) after the service's own retries."""

    STATUS = 502
    CODE = "bad_gateway"


class CloneFailed(UpstreamError):
    CODE = "clone_failed"


class GitHubError(UpstreamError):
    CODE = "github_error"


class ServiceUnavailable(APIError):
    """503: the Docker engine (or an image) is not available."""

    STATUS = 503
    CODE = "service_unavailable"


class DockerUnavailable(ServiceUnavailable):
    CODE = "docker_unavailable"


class ImageMissing(ServiceUnavailable):
    CODE = "image_missing"


# --- the one mapping, derived from the declarations above ----------------------------------------


def _subclasses(cls: type[APIError]) -> list[type[APIError]]:
    out: list[type[APIError]] = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def _families() -> dict[int, type[APIError]]:
    return {c.STATUS: c for c in APIError.__subclasses__()}


def _codes() -> dict[str, type[APIError]]:
    return {c.CODE: c for c in _subclasses(APIError)}


BY_STATUS: Mapping[int, type[APIError]] = _families()
BY_CODE: Mapping[str, type[APIError]] = _codes()


def error_class(status: int, code: str) -> type[APIError]:
    """The most specific class for an answer: its code's class when that belongs to the answer's
    status family, else the status family's, else ServerError for a 5xx, else APIError."""
    by_code = BY_CODE.get(code)
    if by_code is not None and by_code.STATUS == status:
        return by_code
    family = BY_STATUS.get(status)
    if family is not None:
        return family
    return ServerError if status >= 500 else APIError


def retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def from_response(status: int, body: bytes, headers: Mapping[str, str]) -> APIError:
    """The typed error for a non-2xx answer (also when the body is not the contract's shape)."""
    code, message = f"http_{status}", body.decode(errors="replace")[:500] or f"HTTP {status}"
    details: dict[str, Any] = {}
    try:
        err = json.loads(body)["error"]
        code, message = str(err["code"]), str(err["message"])
        if isinstance(err.get("details"), dict):
            details = err["details"]
    except (ValueError, KeyError, TypeError):
        pass
    cls = error_class(status, code)
    return cls(message, status=status, code=code, details=details, headers=headers)
