"""A typed async client for the dockyard control API — reusable by any bot.

    async with DockyardClient("http://127.0.0.1:8080", token) as dy:
        job = await dy.create_job(repo="octo/hello", ref="main", labels={"bug": "BUG-42"})
        try:
            text = (await dy.read_file(job.id, "src/app.py", numbered=True)).content
            await dy.replace_in_file(job.id, "src/app.py", old="x + 1", new="x + 2")
            print((await dy.lint(job.id)).status)
        finally:
            await dy.delete_job(job.id)

Every error answer of the contract (`{"error": {code, message, details}}`) becomes an `ApiError`
subclass chosen by status and code, so callers catch what they mean (`EditMismatch`,
`FileNotFound`, `TooManyJobs`, ...). A request that cannot reach the service is a `TransportError`.

Retries: only where repeating cannot do harm. Connection failures and 502/503 are retried for
reads and for calls the contract makes idempotent (write_file, commit, delete); `429
too_many_jobs` on job creation waits for `Retry-After`. An edit (`replace_in_file`) is never
repeated: a replay could apply it twice; nor are `delete_file` and `move_file` (a replay of one that
worked would answer 404).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from pydantic import BaseModel, TypeAdapter, ValidationError

from bot.models import (
    AgentTool,
    ChecksResult,
    CommitResult,
    DeleteFileResult,
    DiffResult,
    EditorResult,
    Job,
    JobEvent,
    JobList,
    LintResult,
    ListDirectoryResult,
    MoveFileResult,
    ReadFileResult,
    ReplaceInFileResult,
    SearchResult,
    TestResult,
    WriteFileResult,
)

M = TypeVar("M", bound=BaseModel)
_AGENT_TOOLS = TypeAdapter(list[AgentTool])

# --- errors ---------------------------------------------------------------------------------------


class DockyardClientError(Exception):
    """Anything that went wrong talking to the dockyard service."""


class TransportError(DockyardClientError):
    """The service could not be reached or did not answer in time."""


class ApiError(DockyardClientError):
    """The service answered with a contract error."""

    status: int = 0

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: dict[str, Any] = details or {}


class BadRequest(ApiError):
    """400: malformed request, a path outside the workspace, a binary file, a bad pattern."""


class Unauthorized(ApiError):
    """401: missing or unknown token."""


class Forbidden(ApiError):
    """403: the token's role may not do this."""


class NotFound(ApiError):
    """404: unknown job or file."""


class JobNotFound(NotFound):
    pass


class FileNotFound(NotFound):
    pass


class Conflict(ApiError):
    """409: the job's state forbids it, or an edit/commit did not apply."""


class EditMismatch(Conflict):
    """`replace_in_file`: `old` did not occur `expected_count` times (details list where it did)."""


class NothingToCommit(Conflict):
    pass


class CommitConflict(Conflict):
    pass


class PayloadTooLarge(ApiError):
    pass


class TooManyJobs(ApiError):
    """429: the concurrent-job cap is reached; `retry_after_s` says when to try again."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
    ):
        super().__init__(status, code, message, details)
        self.retry_after_s = retry_after_s


class GitHostError(ApiError):
    """502: the git host failed (clone or API) after the service's own retries."""


class Unavailable(ApiError):
    """503: the Docker engine (or an image) is not available."""


class ServerError(ApiError):
    """Any other 5xx."""


_BY_CODE: dict[str, type[ApiError]] = {
    "job_not_found": JobNotFound,
    "file_not_found": FileNotFound,
    "edit_mismatch": EditMismatch,
    "nothing_to_commit": NothingToCommit,
    "commit_conflict": CommitConflict,
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    502: GitHostError,
    503: Unavailable,
}


def error_from_response(status: int, body: bytes, headers: Mapping[str, str]) -> ApiError:
    """The typed error for a non-2xx answer (also when the body is not the contract's shape)."""
    code, message = f"http_{status}", body.decode(errors="replace")[:500] or f"HTTP {status}"
    details: dict[str, Any] = {}
    try:
        data = json.loads(body)
        err = data["error"]
        code, message = str(err["code"]), str(err["message"])
        details = err.get("details") or {}
    except (ValueError, KeyError, TypeError):
        pass
    if status == 429:
        retry: float | None = None
        try:
            retry = float(headers.get("Retry-After", ""))
        except ValueError:
            retry = None
        return TooManyJobs(status, code, message, details, retry_after_s=retry)
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(status, code, message, details)


# --- the client -----------------------------------------------------------------------------------

_RETRYABLE_STATUS = {502, 503}


def _transient(error: ApiError) -> bool:
    """Worth repeating: 502/503, except a 502 relaying GitHub's own 4xx verdict (a 422 for a base
    branch that does not exist, say), which the same request would get again."""
    if error.status not in _RETRYABLE_STATUS:
        return False
    github_status = error.details.get("github_status")
    return not (isinstance(github_status, int) and 400 <= github_status < 500 and github_status != 429)


class DockyardClient:
    """One aiohttp session bound to one service URL and one token. Use as an async context manager
    (or call `close()`)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 300.0,
        retries: int = 3,
        retry_base_s: float = 0.5,
        max_wait_s: float = 120.0,
        session: aiohttp.ClientSession | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10)
        self.retries = retries
        self.retry_base_s = retry_base_s
        self.max_wait_s = max_wait_s
        self._session = session
        self._own_session = session is None

    async def __aenter__(self) -> DockyardClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._own_session:
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"Authorization": f"Bearer {self._token}"}
            )
            self._own_session = True
        return self._session

    # --- plumbing ---------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str | list[str]] | None = None,
        idempotent: bool = False,
        wait_when_busy: bool = False,
        timeout_s: float | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; retry what is safe to retry; raise `ApiError` for an error answer."""
        attempt = 0
        waited = 0.0
        query: list[tuple[str, str]] = []
        for key, value in (params or {}).items():
            query += [(key, v) for v in value] if isinstance(value, list) else [(key, value)]
        timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=10) if timeout_s else None
        while True:
            try:
                async with self._http().request(
                    method,
                    self.base_url + path,
                    json=json_body,
                    params=query or None,
                    timeout=timeout or self._timeout,
                ) as resp:
                    body = await resp.read()
                    if resp.status < 400:
                        return resp.status, body
                    error = error_from_response(resp.status, body, resp.headers)
            except (aiohttp.ClientError, TimeoutError) as e:
                if idempotent and attempt < self.retries:
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise TransportError(
                    f"{method} {path}: cannot reach dockyard at {self.base_url}: {e or type(e).__name__}"
                ) from e
            if isinstance(error, TooManyJobs) and wait_when_busy:
                delay = min(error.retry_after_s or self._backoff(attempt + 1), 60.0)
                if waited + delay <= self.max_wait_s:
                    waited += delay
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
            if _transient(error) and idempotent and attempt < self.retries:
                attempt += 1
                await asyncio.sleep(self._backoff(attempt))
                continue
            raise error

    def _backoff(self, attempt: int) -> float:
        return float(self.retry_base_s * 2 ** (attempt - 1) * (0.75 + random.random() / 2))

    async def _call(self, model: type[M], method: str, path: str, **kw: Any) -> M:
        _, body = await self.request(method, path, **kw)
        try:
            return model.model_validate_json(body)
        except ValidationError as e:
            raise DockyardClientError(f"{method} {path}: unexpected answer: {e}") from e

    # --- jobs -------------------------------------------------------------------------------------

    async def create_job(
        self,
        *,
        repo: str | None = None,
        ref: str | None = None,
        clone_url: str | None = None,
        language: str | None = None,
        limits: Mapping[str, int | float] | None = None,
        ttl_s: int | None = None,
        labels: Mapping[str, str] | None = None,
        wait_when_busy: bool = True,
    ) -> Job:
        """`POST /v1/jobs`: answers once the sandbox is ready. While the service is at its job cap
        (429) this waits for `Retry-After` up to the client's `max_wait_s`."""
        body: dict[str, Any] = {"repo": repo, "ref": ref, "clone_url": clone_url, "language": language}
        if limits:
            body["limits"] = dict(limits)
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        if labels:
            body["labels"] = dict(labels)
        body = {k: v for k, v in body.items() if v is not None}
        return await self._call(Job, "POST", "/v1/jobs", json_body=body, wait_when_busy=wait_when_busy)

    async def get_job(self, job_id: str) -> Job:
        return await self._call(Job, "GET", f"/v1/jobs/{job_id}", idempotent=True)

    async def list_jobs(
        self, *, status: list[str] | None = None, labels: Mapping[str, str] | None = None, limit: int = 100
    ) -> list[Job]:
        params: dict[str, str | list[str]] = {"limit": str(limit)}
        if status:
            params["status"] = list(status)
        if labels:
            params["label"] = [f"{k}:{v}" for k, v in labels.items()]
        return (await self._call(JobList, "GET", "/v1/jobs", params=params, idempotent=True)).jobs

    async def delete_job(self, job_id: str) -> None:
        """`DELETE /v1/jobs/{id}`: also fine when the job is already gone."""
        await self.request("DELETE", f"/v1/jobs/{job_id}", idempotent=True)

    async def events(self, job_id: str) -> AsyncIterator[JobEvent]:
        """The job's events (server-sent events), past ones first; ends when the job does."""
        async with self._http().get(
            f"{self.base_url}/v1/jobs/{job_id}/events",
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        ) as resp:
            if resp.status >= 400:
                raise error_from_response(resp.status, await resp.read(), resp.headers)
            data: list[str] = []
            async for raw in resp.content:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif not line and data:
                    yield JobEvent.model_validate_json("\n".join(data))
                    data = []

    # --- the service's description -----------------------------------------------------------------

    async def agent_tools(self) -> list[AgentTool]:
        """The tools as an agent's model should see them: `x-agent-tools` of `GET /openapi.json`
        (public), which the service derives from the same declarations as its routes."""
        _, body = await self.request("GET", "/openapi.json", idempotent=True)
        try:
            document = json.loads(body)
        except ValueError as e:
            raise DockyardClientError(f"GET /openapi.json: not JSON: {e}") from e
        raw = document.get("x-agent-tools") if isinstance(document, dict) else None
        if raw is None:
            raise DockyardClientError(
                f"the dockyard service at {self.base_url} does not describe its agent tools "
                "(`x-agent-tools` missing from /openapi.json): it is older than this bot; upgrade it"
            )
        try:
            return _AGENT_TOOLS.validate_python(raw)
        except ValidationError as e:
            raise DockyardClientError(f"GET /openapi.json: unexpected x-agent-tools: {e}") from e

    # --- tools ------------------------------------------------------------------------------------

    def _tool(self, job_id: str, name: str) -> str:
        return f"/v1/jobs/{job_id}/tools/{name}"

    async def read_file(
        self,
        job_id: str,
        path: str,
        *,
        start_line: int = 1,
        end_line: int | None = None,
        numbered: bool = False,
    ) -> ReadFileResult:
        body = {"path": path, "start_line": start_line, "end_line": end_line, "numbered": numbered}
        return await self._call(
            ReadFileResult, "POST", self._tool(job_id, "read_file"), json_body=body, idempotent=True
        )

    async def write_file(
        self, job_id: str, path: str, content: str, *, executable: bool | None = None
    ) -> WriteFileResult:
        """`executable`: True → 100755, False → 100644, None keeps an existing file's mode (a new
        file is 100644). The answer's `ignored` says .gitignore keeps the file out of the diff."""
        body: dict[str, Any] = {"path": path, "content": content}
        if executable is not None:
            body["executable"] = executable
        return await self._call(
            WriteFileResult, "POST", self._tool(job_id, "write_file"), json_body=body, idempotent=True
        )

    async def delete_file(self, job_id: str, path: str) -> DeleteFileResult:
        """Delete a file or a symlink (`FileNotFound` when absent). Not repeated on a lost answer:
        a replay of a delete that worked would answer 404."""
        return await self._call(
            DeleteFileResult, "POST", self._tool(job_id, "delete_file"), json_body={"path": path}
        )

    async def move_file(
        self, job_id: str, from_path: str, to_path: str, *, overwrite: bool = False
    ) -> MoveFileResult:
        """Move or rename a file, keeping bytes and mode; an existing `to_path` is `409
        file_exists` unless `overwrite`. Not repeated (a replay would not find `from_path`)."""
        body = {"from": from_path, "to": to_path, "overwrite": overwrite}
        return await self._call(MoveFileResult, "POST", self._tool(job_id, "move_file"), json_body=body)

    async def replace_in_file(
        self, job_id: str, path: str, *, old: str, new: str, expected_count: int = 1
    ) -> ReplaceInFileResult:
        body = {"path": path, "old": old, "new": new, "expected_count": expected_count}
        return await self._call(
            ReplaceInFileResult, "POST", self._tool(job_id, "replace_in_file"), json_body=body
        )

    async def edit_tool(self, job_id: str, tool_input: Mapping[str, Any]) -> EditorResult:
        """Claude's text editor tool: its `tool_use` input forwarded untouched. The model's own
        mistakes come back as `is_error` results; only caller errors raise. Not repeated on a lost
        answer (an insert sent twice would insert twice)."""
        path = self._tool(job_id, "str_replace_based_edit_tool")
        return await self._call(EditorResult, "POST", path, json_body=dict(tool_input))

    async def list_directory(self, job_id: str, path: str = ".", *, depth: int = 1) -> ListDirectoryResult:
        return await self._call(
            ListDirectoryResult,
            "POST",
            self._tool(job_id, "list_directory"),
            json_body={"path": path, "depth": depth},
            idempotent=True,
        )

    async def search(
        self,
        job_id: str,
        pattern: str,
        *,
        path: str = ".",
        glob: str | None = None,
        fixed_string: bool = False,
        case_sensitive: bool = True,
        max_results: int = 100,
    ) -> SearchResult:
        body = {
            "pattern": pattern,
            "path": path,
            "glob": glob,
            "fixed_string": fixed_string,
            "case_sensitive": case_sensitive,
            "max_results": max_results,
        }
        return await self._call(
            SearchResult, "POST", self._tool(job_id, "search"), json_body=body, idempotent=True
        )

    # --- lint, diff, commit, checks ---------------------------------------------------------------

    async def lint(
        self,
        job_id: str,
        *,
        paths: list[str] | None = None,
        linters: list[str] | None = None,
        all_files: bool = False,
    ) -> LintResult:
        body: dict[str, Any] = {"paths": paths, "linters": linters}
        if all_files:
            body["all_files"] = True
        return await self._call(
            LintResult, "POST", f"/v1/jobs/{job_id}/lint", json_body=body, idempotent=True
        )

    async def test(
        self,
        job_id: str,
        *,
        paths: list[str] | None = None,
        command: list[str] | None = None,
        timeout_s: int | None = None,
    ) -> TestResult:
        """Run the repository's tests in a fresh box; failures are judged new against base_sha."""
        body: dict[str, Any] = {"paths": paths, "command": command, "timeout_s": timeout_s}
        # A run, its base run and a re-run may each take the language's whole deadline.
        return await self._call(
            TestResult,
            "POST",
            f"/v1/jobs/{job_id}/test",
            json_body=body,
            idempotent=True,
            timeout_s=3 * (timeout_s or 300) + self._timeout_total(),
        )

    async def diff(self, job_id: str) -> DiffResult:
        return await self._call(DiffResult, "GET", f"/v1/jobs/{job_id}/diff", idempotent=True)

    async def commit(
        self,
        job_id: str,
        *,
        branch: str,
        message: str,
        base_branch: str | None = None,
        pull_request: Mapping[str, Any] | None = None,
    ) -> CommitResult:
        """One commit of the whole diff on `branch` (replacing this job's earlier commit there);
        with `pull_request` ({title, body, draft}) also opens (or finds) the pull request."""
        body: dict[str, Any] = {"branch": branch, "message": message}
        if base_branch is not None:
            body["base_branch"] = base_branch
        if pull_request is not None:
            body["pull_request"] = dict(pull_request)
        # Idempotent by contract: the same diff and branch give the same commit and the same PR.
        return await self._call(
            CommitResult, "POST", f"/v1/jobs/{job_id}/commit", json_body=body, idempotent=True
        )

    async def checks(self, job_id: str, *, sha: str | None = None, wait_s: float = 0) -> ChecksResult:
        params: dict[str, str | list[str]] = {"wait_s": f"{wait_s:g}"}
        if sha:
            params["sha"] = sha
        return await self._call(
            ChecksResult,
            "GET",
            f"/v1/jobs/{job_id}/checks",
            params=params,
            idempotent=True,
            timeout_s=wait_s + self._timeout_total(),
        )

    def _timeout_total(self) -> float:
        return float(self._timeout.total or 300.0)
