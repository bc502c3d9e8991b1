"""GitHub App auth and clients.

A fresh installation token per operation (never cached past its use), scoped to ONE repository
and the least permissions the operation needs. Tokens never leave this module except as the
`Authorization` header of one git command (env, not argv) — never in logs, errors, the store,
the box. Retries: githubkit's retry hook with our own bounded decision (5xx and network errors
with exponential backoff; primary and secondary rate limits after their reset/Retry-After, capped).
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import certifi
from githubkit import AppAuthStrategy, GitHub, TokenAuthStrategy
from githubkit.cache import MemCacheStrategy
from githubkit.exception import GitHubException, RateLimitExceeded, RequestError, RequestFailed
from githubkit.typing import RetryOption

from service import metrics
from service.errors import GitHubError, GitHubNotConfigured, RepoNotFound
from service.logging import get_logger
from service.settings import Settings

log = get_logger(__name__)
T = TypeVar("T")

CLONE = {"contents": "read"}
COMMIT = {"contents": "write"}
COMMIT_AND_PR = {"contents": "write", "pull_requests": "write"}
CHECKS = {"checks": "read", "statuses": "read"}


class BoundedRetry:
    """Retry transient failures a bounded number of times; everything else fails at once."""

    def __init__(self, max_retries: int, base_s: float, max_wait_s: float):
        self.max_retries = max_retries
        self.base_s = base_s
        self.max_wait_s = max_wait_s

    def __call__(self, exc: GitHubException, retry_count: int) -> RetryOption:
        if retry_count >= self.max_retries:
            return RetryOption(False)
        wait: float | None = None
        if isinstance(exc, RateLimitExceeded):
            wait = min(exc.retry_after.total_seconds(), self.max_wait_s)
        elif isinstance(exc, RequestFailed):  # an HTTP answer: only 5xx is worth another try
            if exc.response.status_code >= 500:
                wait = self.base_s * 2**retry_count
        elif isinstance(exc, RequestError):  # no answer: connection reset, timeout
            wait = self.base_s * 2**retry_count
        if wait is None:
            return RetryOption(False)
        metrics.GITHUB_RETRIES.inc()
        log.warning("github_retry", error=type(exc).__name__, attempt=retry_count + 1, wait_s=wait)
        return RetryOption(True, timedelta(seconds=wait))


@dataclass(frozen=True)
class RepoId:
    owner: str
    name: str

    @classmethod
    def parse(cls, full: str) -> RepoId:
        owner, _, name = full.partition("/")
        return cls(owner, name.removesuffix(".git"))

    def __str__(self) -> str:
        return f"{self.owner}/{self.name}"


@dataclass(frozen=True)
class CloneAuth:
    url: str
    env: dict[str, str]
    secrets: list[str]


class GitHubApp:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._app_id = settings.github_app_id
        self._pem = settings.github_private_key() if settings.github_configured() else None
        # Built once: githubkit makes a fresh httpx client per operation, and httpx would otherwise
        # read and parse the CA bundle (on the event loop) for every one of them.
        self._ssl = ssl.create_default_context(cafile=certifi.where())

    @property
    def configured(self) -> bool:
        return bool(self._app_id and self._pem)

    def _require(self) -> tuple[str, str]:
        if not (self._app_id and self._pem):
            raise GitHubNotConfigured(
                "this service has no GitHub App: set DOCKYARD_GITHUB_APP_ID and "
                "DOCKYARD_GITHUB_APP_PRIVATE_KEY (or _FILE), or create the job with clone_url",
                {},
            )
        return self._app_id, self._pem

    def _client(self, auth: Any) -> GitHub[Any]:
        s = self.settings
        return GitHub(
            auth,
            base_url=s.github_api_url.rstrip("/") + "/",
            timeout=s.github_timeout_s,
            ssl_verify=self._ssl,
            cache_strategy=MemCacheStrategy(),  # this client's own: no token outlives the operation
            http_cache=False,
            auto_retry=BoundedRetry(s.github_max_retries, s.github_retry_base_s, s.github_max_retry_wait_s),
            user_agent="dockyard",
        )

    async def call(self, what: str, repo: RepoId, op: Awaitable[T]) -> T:
        """Await one githubkit call, mapping failures to the contract's errors (never with a token)."""
        try:
            result = await op
        except RequestFailed as e:
            status = e.response.status_code
            metrics.GITHUB_CALLS.labels(op=what, status=str(status)).inc()
            message = _message(e)
            if status == 404:
                raise RepoNotFound(
                    f"{what}: {repo} was not found or the GitHub App is not installed on it ({message})",
                    {"repo": str(repo), "github_status": status},
                ) from None
            raise GitHubError(
                f"{what} failed for {repo}: GitHub answered {status}: {message}",
                {"repo": str(repo), "github_status": status, "github_message": message},
            ) from None
        except GitHubException as e:
            metrics.GITHUB_CALLS.labels(op=what, status="error").inc()
            raise GitHubError(f"{what} failed for {repo}: {type(e).__name__}", {"repo": str(repo)}) from None
        metrics.GITHUB_CALLS.labels(op=what, status=str(getattr(result, "status_code", 200))).inc()
        return result

    async def token(self, repo: RepoId, permissions: Mapping[str, str]) -> str:
        """A fresh installation token for ONE repository with exactly these permissions."""
        app_id, pem = self._require()
        app = self._client(AppAuthStrategy(app_id, pem))
        async with app:  # one connection for both calls
            inst = await self.call(
                "finding the App installation",
                repo,
                app.rest.apps.async_get_repo_installation(repo.owner, repo.name),
            )
            body: Any = {"repositories": [repo.name], "permissions": dict(permissions)}
            made = await self.call(
                "creating an installation token",
                repo,
                app.rest.apps.async_create_installation_access_token(inst.parsed_data.id, data=body),
            )
        return made.parsed_data.token

    async def repo_client(self, repo: RepoId, permissions: Mapping[str, str]) -> GitHub[Any]:
        """A client with a fresh token for `repo`; use it as `async with` (one connection)."""
        return self._client(TokenAuthStrategy(await self.token(repo, permissions)))

    async def clone_auth(self, repo: RepoId) -> CloneAuth:
        """URL + env for one `git fetch`: the token travels as an HTTP header in the environment."""
        token = await self.token(repo, CLONE)
        basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
        return CloneAuth(
            url=f"{self.settings.github_web_url.rstrip('/')}/{repo.owner}/{repo.name}.git",
            env={
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
            },
            secrets=[token, basic],
        )


def _message(e: RequestFailed) -> str:
    try:
        body = e.response.json()
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])[:500]
    except Exception:  # not JSON
        pass
    return e.response.raw_response.reason_phrase or "error"
