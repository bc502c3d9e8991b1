"""The bot's port onto the dockyard service: the narrow, job-id-based calls the fixer and the agent
make, each one a call of the client SDK (`dockyard_client.AsyncDockyard` and its job handles).

Nothing wire-shaped lives here: the answers are `dockyard_client.models`, the errors are
`dockyard_client.errors` (`APIError` and its subclasses, `ConnectionError`, all `DockyardError`),
and HTTP, retries and backoff are the SDK's (a lost answer to a read, a write or a keyed call —
job creation, commit — is repeated; an edit, a delete or a move never is; `429 too_many_jobs` on
job creation waits for `Retry-After`, under the same Idempotency-Key). The port exists so the
fixer can be driven by an in-memory stand-in in the unit tests (tests/unit/test_bot_fixer.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from dockyard_client import AsyncDockyard, AsyncJob, RetryPolicy
from dockyard_client import models as m


class DockyardPort:
    """The calls the bot makes, by job id, over one `AsyncDockyard` (closed with the port)."""

    def __init__(self, sdk: AsyncDockyard) -> None:
        self.sdk = sdk
        self._jobs: dict[str, AsyncJob] = {}

    @classmethod
    def connect(
        cls,
        base_url: str,
        token: str | None,
        *,
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> DockyardPort:
        return cls(AsyncDockyard(base_url, token, timeout=timeout_s, retry=retry))

    async def __aenter__(self) -> DockyardPort:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self.sdk.close()

    async def _job(self, job_id: str) -> AsyncJob:
        """The SDK's handle on a job: the one `create_job` made, else fetched once."""
        handle = self._jobs.get(job_id)
        if handle is None:
            handle = self._jobs[job_id] = await self.sdk.jobs.get(job_id)
        return handle

    # --- the service and its jobs -------------------------------------------------------------------

    async def agent_tools(self) -> list[m.AgentTool]:
        return await self.sdk.agent_tools()

    async def create_job(
        self,
        *,
        repo: str | None = None,
        ref: str | None = None,
        clone_url: str | None = None,
        ttl_s: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> m.Job:
        job = await self.sdk.jobs.create(repo=repo, ref=ref, clone_url=clone_url, ttl_s=ttl_s, labels=labels)
        self._jobs[job.id] = job
        return job.info

    async def list_jobs(self, *, labels: Mapping[str, str] | None = None) -> list[m.Job]:
        return [job async for job in self.sdk.jobs.list(labels=labels)]

    async def delete_job(self, job_id: str) -> None:
        """Also fine when the job is already gone."""
        self._jobs.pop(job_id, None)
        await self.sdk.jobs.delete(job_id)

    # --- the job's tools ----------------------------------------------------------------------------

    async def read_file(
        self,
        job_id: str,
        path: str,
        *,
        start_line: int = 1,
        end_line: int | None = None,
        numbered: bool = False,
    ) -> m.ReadFileResult:
        return await (await self._job(job_id)).files.read(
            path, start_line=start_line, end_line=end_line, numbered=numbered
        )

    async def write_file(
        self, job_id: str, path: str, content: str, *, executable: bool | None = None
    ) -> m.WriteFileResult:
        return await (await self._job(job_id)).files.write(path, content, executable=executable)

    async def delete_file(self, job_id: str, path: str) -> m.DeleteFileResult:
        return await (await self._job(job_id)).files.delete(path)

    async def move_file(
        self, job_id: str, from_path: str, to_path: str, *, overwrite: bool = False
    ) -> m.MoveFileResult:
        return await (await self._job(job_id)).files.move(from_path, to_path, overwrite=overwrite)

    async def edit_tool(self, job_id: str, tool_input: Mapping[str, Any]) -> m.EditResult:
        """Claude's text editor tool: its `tool_use` input forwarded untouched."""
        return await (await self._job(job_id)).edit(tool_input)

    async def list_directory(self, job_id: str, path: str = ".", *, depth: int = 1) -> m.ListDirectoryResult:
        return await (await self._job(job_id)).files.list(path, depth=depth)

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
    ) -> m.SearchResult:
        return await (await self._job(job_id)).files.search(
            pattern, path=path, glob=glob, fixed_string=fixed_string, case_sensitive=case_sensitive,
            max_results=max_results,
        )

    # --- lint, tests, diff, commit, checks ----------------------------------------------------------

    async def lint(self, job_id: str) -> m.LintResult:
        return await (await self._job(job_id)).lint()

    async def test(self, job_id: str) -> m.TestResult:
        return await (await self._job(job_id)).test()

    async def diff(self, job_id: str) -> m.DiffResult:
        return await (await self._job(job_id)).diff()

    async def commit(
        self,
        job_id: str,
        *,
        branch: str,
        message: str,
        base_branch: str | None = None,
        pull_request: Mapping[str, Any] | None = None,
    ) -> m.CommitResult:
        return await (await self._job(job_id)).commit(
            branch=branch, message=message, base_branch=base_branch, pull_request=pull_request
        )

    async def checks(self, job_id: str, *, sha: str | None = None, wait_s: float = 0) -> m.ChecksResult:
        return await (await self._job(job_id)).checks(sha=sha, wait_s=wait_s)
