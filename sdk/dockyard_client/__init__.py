"""dockyard-client: the client SDK of the dockyard sandboxed executor service.

    from dockyard_client import Dockyard

    with Dockyard() as dy:                       # DOCKYARD_API_URL, DOCKYARD_API_TOKEN
        with dy.jobs.create(repo="octo/hello") as job:
            print(job.files.read("src/app.py").content)

`AsyncDockyard` is the same API for asyncio (`async with`, `await`, `async for`).
"""

from dockyard_client import errors, models
from dockyard_client._async import AsyncDockyard, AsyncFiles, AsyncJob, Creating
from dockyard_client._base import DEFAULT_URL, ENV_TOKEN, ENV_URL, Event, RetryPolicy
from dockyard_client._sync import Dockyard, Files, Job
from dockyard_client._version import __version__
from dockyard_client.errors import (
    APIError,
    AuthenticationError,
    Conflict,
    ConnectionError,
    DockyardError,
    EditMismatch,
    FileNotFound,
    Forbidden,
    InvalidRequest,
    JobNotFound,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ResponseValidationError,
    ServerError,
    ServiceUnavailable,
    TimeoutError,
    UpstreamError,
)

__all__ = [
    "DEFAULT_URL",
    "ENV_TOKEN",
    "ENV_URL",
    "APIError",
    "AsyncDockyard",
    "AsyncFiles",
    "AsyncJob",
    "AuthenticationError",
    "Conflict",
    "ConnectionError",
    "Creating",
    "Dockyard",
    "DockyardError",
    "EditMismatch",
    "Event",
    "FileNotFound",
    "Files",
    "Forbidden",
    "InvalidRequest",
    "Job",
    "JobNotFound",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ResponseValidationError",
    "RetryPolicy",
    "ServerError",
    "ServiceUnavailable",
    "TimeoutError",
    "UpstreamError",
    "__version__",
    "errors",
    "models",
]
