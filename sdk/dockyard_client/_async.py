"""The client (httpx underneath) and its job handles, written once for both flavours.

`_async.py` (AsyncDockyard, httpx.AsyncClient) is the source; `_sync.py` (Dockyard, httpx.Client) is
generated from it by `python sdk/scripts/generate_sync.py` (the unasync library: `async` and `await`
go, Async names lose their prefix, aclose becomes close, ...). Where the flavours truly differ the
code calls the twin shims `_async_compat` / `_sync_compat` instead. Usage: the package's docstring.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse
from pydantic import BaseModel

from dockyard_client import _base, errors
from dockyard_client import _endpoints as ep
from dockyard_client import models as m
from dockyard_client._async_compat import FLAVOUR, creating, sleep
from dockyard_client._async_compat import Creating as Creating  # the answer of jobs.create (exported)
from dockyard_client._version import __version__

M = TypeVar("M", bound=BaseModel)
_USER_AGENT = f"dockyard-client/{__version__} (python; {FLAVOUR})"


class AsyncDockyard:
    """One HTTP connection pool bound to one service URL and one token.

    `base_url` and `token` default to DOCKYARD_API_URL (else http://127.0.0.1:8080) and
    DOCKYARD_API_TOKEN; explicit arguments win. `timeout` is the read timeout in seconds (or an
    httpx.Timeout); `max_retries` bounds the retries of failures worth repeating (see RetryPolicy)."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int = 3,
        retry: _base.RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.base_url = _base.resolve_url(base_url)
        self._token = _base.resolve_token(token)
        self.timeout = _base.make_timeout(timeout)
        self.retry = retry or _base.RetryPolicy(max_retries=max_retries)
        self._own_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=self.timeout)
        self._headers = _base.headers(self._token, _USER_AGENT)
        self.jobs = AsyncJobs(self)
        self.audit = AsyncAudit(self)
        self.images = AsyncImages(self)
        self.config = AsyncConfig(self)

    async def __aenter__(self) -> AsyncDockyard:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_http:
            await self._http.aclose()

    # --- plumbing ---------------------------------------------------------------------------------

    async def request(
        self,
        endpoint: ep.Endpoint,
        *,
        path: Mapping[str, str] | None = None,
        json: Any = None,
        params: httpx.QueryParams | None = None,
        http_timeout: httpx.Timeout | None = None,
        idempotent: bool | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send one logical call (retrying what is safe to retry); raise APIError for an error answer."""
        url = self.base_url + endpoint.url_path(**(path or {}))
        repeatable = endpoint.idempotent if idempotent is None else idempotent
        headers = dict(self._headers)
        if endpoint.keyed:
            headers["Idempotency-Key"] = _base.idempotency_key(idempotency_key)
            repeatable = True
        attempt, waited = 0, 0.0
        while True:
            try:
                resp = await self._http.request(
                    endpoint.method, url, json=json, params=params, headers=headers,
                    timeout=http_timeout or self.timeout,
                )
            except httpx.TransportError as exc:
                delay = self.retry.on_transport(exc, attempt, repeatable)
                if delay is None:
                    raise _base.transport_error(exc, endpoint.method, url) from exc
            else:
                if resp.status_code < 400 or resp.status_code in endpoint.ok_statuses:
                    return resp
                err = errors.from_response(resp.status_code, resp.content, resp.headers)
                delay = self.retry.on_error(err, attempt, waited, repeatable)
                if delay is None:
                    raise err
            attempt += 1
            waited += delay
            await sleep(delay)

    async def _call(self, model: type[M], endpoint: ep.Endpoint, **kw: Any) -> M:
        return _base.parse(model, endpoint, (await self.request(endpoint, **kw)).content)

    # --- the service ------------------------------------------------------------------------------

    async def health(self) -> m.Health:
        """`GET /healthz`: the service is alive."""
        return await self._call(m.Health, ep.HEALTH)

    async def ready(self) -> m.Health:
        """`GET /readyz`: engine reachable, config valid, images built (`status` says which; an
        unready service's answer is returned, not raised)."""
        return await self._call(m.Health, ep.READY)

    async def openapi(self) -> dict[str, Any]:
        """The contract as OpenAPI 3.1 (public)."""
        data = (await self.request(ep.OPENAPI)).json()
        if not isinstance(data, dict):
            raise errors.ResponseValidationError("GET /openapi.json: not a JSON object")
        return data

    async def agent_tools(self) -> builtins.list[m.AgentTool]:
        """The tools as an agent's model should see them: `x-agent-tools` of /openapi.json."""
        return _base.agent_tools(await self.openapi(), self.base_url)

    async def metrics(self) -> str:
        """Prometheus text of `GET /metrics`."""
        return (await self.request(ep.METRICS)).text


class AsyncJobs:
    def __init__(self, client: AsyncDockyard) -> None:
        self._client = client

    def create(
        self,
        *,
        repo: str | None = None,
        ref: str | None = None,
        clone_url: str | None = None,
        language: str | None = None,
        limits: Mapping[str, int | float] | None = None,
        ttl_s: int | None = None,
        labels: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Creating:
        """`POST /v1/jobs`: a sandbox on `repo` (GitHub owner/name) or `clone_url`, answered once it is
        ready. Use the answer as a context manager to delete the job when done (the async client's
        answer is also awaitable: `job = await dy.jobs.create(...)`). Sent with an Idempotency-Key
        (yours, or a fresh one), so a lost answer or a 429 is retried without a second job."""
        body = _base.job_create_body(
            repo=repo, ref=ref, clone_url=clone_url, language=language, limits=limits, ttl_s=ttl_s,
            labels=labels,
        )

        async def make() -> AsyncJob:
            info = await self._client._call(m.Job, ep.JOB_CREATE, json=body, idempotency_key=idempotency_key)
            return AsyncJob(self._client, info)

        return creating(make)

    async def get(self, job_id: str) -> AsyncJob:
        """A handle on an existing job (`GET /v1/jobs/{id}`)."""
        return AsyncJob(self._client, await self._client._call(m.Job, ep.JOB_GET, path={"id": job_id}))

    async def list(
        self,
        *,
        status: Sequence[m.JobStatus] | None = None,
        labels: Mapping[str, str] | Sequence[str] | None = None,
        tenant: str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[m.Job]:
        """Every job that matches, newest first, fetched page by page (`cursor` / `next_cursor`)."""
        cursor: str | None = None
        while True:
            params = _base.query(
                status=list(status) if status else None, label=_base.labels_query(labels), tenant=tenant,
                limit=page_size, cursor=cursor,
            )
            page = await self._client._call(m.JobList, ep.JOB_LIST, params=params)
            for job in page.jobs:
                yield job
            if not page.next_cursor or not page.jobs:
                return
            cursor = page.next_cursor

    async def delete(self, job_id: str) -> None:
        """`DELETE /v1/jobs/{id}`; fine when the job is already gone."""
        await self._client.request(ep.JOB_DELETE, path={"id": job_id})


class AsyncJob:
    """A handle on one job: its last known state (`info`), its files and its calls. As a context
    manager it deletes the job on exit, also when the block raised."""

    def __init__(self, client: AsyncDockyard, info: m.Job) -> None:
        self._client = client
        self.info = info
        self.files = AsyncFiles(client, info.id)

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def status(self) -> m.JobStatus:
        return self.info.status

    def __repr__(self) -> str:
        return f"<dockyard Job {self.id} {self.status}>"

    async def __aenter__(self) -> AsyncJob:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.delete()
        except errors.DockyardError as failure:
            if e is None:
                raise
            e.add_note(f"dockyard: deleting job {self.id} on the way out failed too: {failure}")

    def _path(self) -> dict[str, str]:
        return {"id": self.id}

    async def refresh(self) -> m.Job:
        self.info = await self._client._call(m.Job, ep.JOB_GET, path=self._path())
        return self.info

    async def wait_ready(self, timeout_s: float = 300.0, poll_s: float = 0.5) -> m.Job:
        """Until the job is `ready`; a failed or ended job raises JobNotReady (its error in details)."""
        deadline = time.monotonic() + timeout_s
        while True:
            info = self.info if self.info.status != "creating" else await self.refresh()
            if info.status == "ready":
                return info
            if info.status != "creating" or time.monotonic() >= deadline:
                raise errors.JobNotReady(
                    f"job {self.id} is {info.status}" + (f": {info.error}" if info.error else ""),
                    status=409, code="job_not_ready", details={"status": info.status, "error": info.error},
                )
            await sleep(poll_s)
            await self.refresh()

    async def delete(self) -> None:
        """`DELETE /v1/jobs/{id}`: container and storage go, the record stays (`destroyed`)."""
        await self._client.request(ep.JOB_DELETE, path=self._path())

    async def events(
        self, *, last_event_id: int | None = None, max_reconnects: int = 10
    ) -> AsyncIterator[_base.Event]:
        """The job's events, past ones first, then live ones; ends with the job's end event. A dropped
        connection is resumed with `Last-Event-ID`, so no event is lost or repeated."""
        url = self._client.base_url + ep.JOB_EVENTS.url_path(id=self.id)
        last = last_event_id
        failures = 0
        while True:
            headers = dict(self._client._headers)
            if last is not None:
                headers["Last-Event-ID"] = str(last)
            try:
                async with aconnect_sse(
                    self._client._http, "GET", url, headers=headers,
                    timeout=httpx.Timeout(None, connect=self._client.timeout.connect),
                ) as source:
                    resp = source.response
                    if resp.status_code >= 400:
                        await resp.aread()
                        raise errors.from_response(resp.status_code, resp.content, resp.headers)
                    async for sse in source.aiter_sse():
                        if not sse.data:
                            continue  # a keep-alive ping
                        event = _base.decode_event(sse)
                        if isinstance(event, m.JobEvent):
                            last = event.seq
                        failures = 0
                        yield event
                        if isinstance(event, m.JobEvent) and event.type in m.END_EVENTS:
                            return
            except httpx.TransportError as exc:
                failures += 1
                if failures > max_reconnects:
                    raise _base.transport_error(exc, "GET", url) from exc
                await sleep(self._client.retry.backoff(failures - 1))
                continue
            if (await self.refresh()).status in m.TERMINAL_STATUSES:
                return  # the stream ended with the job (its end event was before Last-Event-ID)

    async def logs(self) -> str:
        """The container's own log (auditor)."""
        return (await self._client.request(ep.JOB_LOGS, path=self._path())).text

    async def diff(self) -> m.DiffResult:
        return await self._client._call(m.DiffResult, ep.JOB_DIFF, path=self._path())

    async def lint(
        self,
        *,
        paths: Sequence[str] | None = None,
        linters: Sequence[str] | None = None,
        all_files: bool | None = None,
    ) -> m.LintResult:
        """The repository's own linters on the changed files (or `paths`, or `all_files`)."""
        body = _base.body(
            paths=list(paths) if paths is not None else None,
            linters=list(linters) if linters is not None else None, all_files=all_files,
        )
        return await self._client._call(
            m.LintResult, ep.JOB_LINT, path=self._path(), json=body,
            http_timeout=_base.long_timeout(self._client.timeout, 600),
        )

    async def test(
        self,
        *,
        paths: Sequence[str] | None = None,
        command: Sequence[str] | None = None,
        timeout_s: int | None = None,
    ) -> m.TestResult:
        """The repository's tests in a fresh box; failures are judged new against base_sha."""
        body = _base.body(
            paths=list(paths) if paths is not None else None,
            command=list(command) if command is not None else None, timeout_s=timeout_s,
        )
        # A run, its base run and a re-run may each take the language's whole deadline.
        return await self._client._call(
            m.TestResult, ep.JOB_TEST, path=self._path(), json=body,
            http_timeout=_base.long_timeout(self._client.timeout, 3 * (timeout_s or 300)),
        )

    async def commit(
        self,
        *,
        branch: str,
        message: str,
        base_branch: str | None = None,
        pull_request: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> m.CommitResult:
        """One commit of the whole diff on `branch`; with `pull_request` ({title, body, draft}) also
        the pull request. Sent with an Idempotency-Key, so a lost answer is retried safely."""
        body = _base.body(
            branch=branch, message=message, base_branch=base_branch,
            pull_request=dict(pull_request) if pull_request is not None else None,
        )
        return await self._client._call(
            m.CommitResult, ep.JOB_COMMIT, path=self._path(), json=body, idempotency_key=idempotency_key
        )

    async def checks(self, *, sha: str | None = None, wait_s: float | None = None) -> m.ChecksResult:
        """The git host's checks for `sha` (default: the job's last commit), polled up to `wait_s`."""
        return await self._client._call(
            m.ChecksResult, ep.JOB_CHECKS, path=self._path(), params=_base.query(sha=sha, wait_s=wait_s),
            http_timeout=_base.long_timeout(self._client.timeout, wait_s or 0),
        )

    async def edit(
        self,
        tool_input: Mapping[str, Any] | None = None,
        /,
        *,
        command: str | None = None,
        path: str | None = None,
        view_range: Sequence[int] | None = None,
        file_text: str | None = None,
        old_str: str | None = None,
        new_str: str | None = None,
        insert_line: int | None = None,
        insert_text: str | None = None,
    ) -> m.EditResult:
        """Claude's `str_replace_based_edit_tool`: pass a tool_use's `input` untouched, or its fields.
        The answer is what the tool_result carries (`content`, `is_error`). Only `view` is retried."""
        body = _base.edit_body(
            tool_input,
            {
                "command": command, "path": path, "view_range": list(view_range) if view_range else None,
                "file_text": file_text, "old_str": old_str, "new_str": new_str, "insert_line": insert_line,
                "insert_text": insert_text,
            },
        )
        return await self._client._call(
            m.EditResult, ep.EDIT, path=self._path(), json=body, idempotent=body["command"] == "view"
        )


class AsyncFiles:
    """The job's file tools (each one audited call into the job's box)."""

    def __init__(self, client: AsyncDockyard, job_id: str) -> None:
        self._client = client
        self._job = {"id": job_id}

    async def read(
        self, path: str, *, start_line: int | None = None, end_line: int | None = None,
        numbered: bool | None = None,
    ) -> m.ReadFileResult:
        body = _base.body(path=path, start_line=start_line, end_line=end_line, numbered=numbered)
        return await self._client._call(m.ReadFileResult, ep.READ_FILE, path=self._job, json=body)

    async def write(self, path: str, content: str, *, executable: bool | None = None) -> m.WriteFileResult:
        """Write `content` byte-exact (parents created); `executable` None keeps an existing mode."""
        body = _base.body(path=path, content=content, executable=executable)
        return await self._client._call(m.WriteFileResult, ep.WRITE_FILE, path=self._job, json=body)

    async def replace(
        self, path: str, old: str, new: str, *, expected_count: int | None = None
    ) -> m.ReplaceInFileResult:
        """Exact replacement; `old` must occur `expected_count` (default 1) times, else EditMismatch."""
        body = _base.body(path=path, old=old, new=new, expected_count=expected_count)
        return await self._client._call(
            m.ReplaceInFileResult, ep.REPLACE_IN_FILE, path=self._job, json=body
        )

    async def delete(self, path: str) -> m.DeleteFileResult:
        return await self._client._call(
            m.DeleteFileResult, ep.DELETE_FILE, path=self._job, json={"path": path}
        )

    async def move(self, from_path: str, to_path: str, *, overwrite: bool | None = None) -> m.MoveFileResult:
        body = _base.body(overwrite=overwrite) | {"from": from_path, "to": to_path}
        return await self._client._call(m.MoveFileResult, ep.MOVE_FILE, path=self._job, json=body)

    async def list(self, path: str | None = None, *, depth: int | None = None) -> m.ListDirectoryResult:
        body = _base.body(path=path, depth=depth)
        return await self._client._call(
            m.ListDirectoryResult, ep.LIST_DIRECTORY, path=self._job, json=body
        )

    async def search(
        self,
        pattern: str,
        *,
        path: str | None = None,
        glob: str | None = None,
        fixed_string: bool | None = None,
        case_sensitive: bool | None = None,
        max_results: int | None = None,
    ) -> m.SearchResult:
        body = _base.body(
            pattern=pattern, path=path, glob=glob, fixed_string=fixed_string, case_sensitive=case_sensitive,
            max_results=max_results,
        )
        return await self._client._call(m.SearchResult, ep.SEARCH, path=self._job, json=body)


class AsyncAudit:
    def __init__(self, client: AsyncDockyard) -> None:
        self._client = client

    async def list(
        self,
        *,
        job_id: str | None = None,
        actor: str | None = None,
        action: str | None = None,
        tenant: str | None = None,
        path: str | None = None,
        since: str | None = None,
        until: str | None = None,
        after: int = 0,
        page_size: int | None = None,
    ) -> AsyncIterator[m.AuditRecord]:
        """Every matching audit record in seq order (after `after`), page by page (`next_after`)."""
        cursor = after
        while True:
            params = _base.query(
                job_id=job_id, actor=actor, action=action, tenant=tenant, path=path, since=since,
                until=until, after=cursor, limit=page_size,
            )
            page = await self._client._call(m.AuditList, ep.AUDIT_LIST, params=params)
            for record in page.records:
                yield record
            if page.next_after is None or not page.records:
                return
            cursor = page.next_after

    async def verify(self) -> m.AuditVerifyResult:
        return await self._client._call(m.AuditVerifyResult, ep.AUDIT_VERIFY)


class AsyncImages:
    def __init__(self, client: AsyncDockyard) -> None:
        self._client = client

    async def list(self) -> m.ImagesResult:
        """Languages, images (and whether each is built) and limits."""
        return await self._client._call(m.ImagesResult, ep.IMAGES)


class AsyncConfig:
    def __init__(self, client: AsyncDockyard) -> None:
        self._client = client

    async def get(self) -> m.ConfigView:
        """The config in use (admin)."""
        return await self._client._call(m.ConfigView, ep.CONFIG_GET)

    async def reload(self) -> m.ConfigView:
        """Re-read the images/limits config without a restart (admin)."""
        return await self._client._call(m.ConfigView, ep.CONFIG_RELOAD)


# Where each endpoint's `sdk` name lives (the drift test resolves "<surface>.<method>" here).
SURFACES: dict[str, type] = {
    "client": AsyncDockyard, "jobs": AsyncJobs, "job": AsyncJob, "files": AsyncFiles, "audit": AsyncAudit,
    "images": AsyncImages, "config": AsyncConfig,
}
