"""The MCP tools, derived from what the REST API already declares.

Jobs (create, list, get, delete), every exposed tool of the registry (`EXPOSED`: its request
model is the input schema, its agent description the tool's description), lint, test, diff,
commit and checks. Each tool names the REST route it mirrors; its roles come from that route (a
role sees and calls over MCP exactly what it may over REST, tenants included) and it runs the same
service call as that route's handler, so it is audited alike (same action, actor and tenant).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from service.api.jobs import job_out
from service.app_keys import GITHOST, JOBS, LINT, TESTS
from service.audit import Actor
from service.models import (
    ChecksQuery,
    ChecksResult,
    CommitRequest,
    CommitResult,
    DiffResult,
    Job,
    JobCreate,
    JobList,
    JobListQuery,
    LintRequest,
    LintResult,
    TestRequest,
    TestResult,
)
from service.tools.registry import EXPOSED, AnyTool, Tool, route_path

# (app, job id ("" for a tool on no job), validated arguments, actor) → the answer
Runner = Callable[[web.Application, str, Any, Actor], Awaitable[BaseModel]]

JOB_ID = "job_id"
# A model's top-level combinators (JobCreate's "exactly one source") stay checked by the model;
# agent model APIs refuse them at the top of a tool's input schema.
_TOP_LEVEL_DROPPED = ("oneOf", "anyOf", "allOf", "title")


@dataclass(frozen=True)
class McpTool:
    name: str
    method: str  # the REST route this tool mirrors: its roles (and summary) are that route's
    path: str
    params: type[BaseModel] | None  # arguments besides job_id (a route's body or query model)
    result: type[BaseModel]
    run: Runner
    text: str | None = None  # the description; None: the route's summary
    note: str = ""  # said after the description
    read_only: bool = False
    destructive: bool = False

    @property
    def on_job(self) -> bool:
        return "{id}" in self.path

    def description(self, summary: str) -> str:
        return " ".join(part for part in (self.text or summary, self.note) if part)

    def input_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = (
            self.params.model_json_schema(by_alias=True) if self.params is not None else {"type": "object"}
        )
        for key in _TOP_LEVEL_DROPPED:
            schema.pop(key, None)
        properties: dict[str, Any] = dict(schema.get("properties", {}))
        required: list[str] = list(schema.get("required", []))
        if self.on_job:
            properties = {JOB_ID: {"type": "string", "description": "the job's id (job_…)"}, **properties}
            required = [JOB_ID, *required]
        schema.update(type="object", properties=properties, additionalProperties=False)
        if required:
            schema["required"] = required
        return schema

    def output_schema(self) -> dict[str, Any]:
        schema = self.result.model_json_schema(by_alias=True, mode="serialization")
        schema.pop("title", None)
        return schema


# --- the service calls, one per REST handler they mirror ------------------------------------------


async def _create_job(app: web.Application, _: str, req: JobCreate, who: Actor) -> Job:
    jobs = app[JOBS]
    job = await jobs.create(req, who)
    return job_out(job, jobs.env_state(job.id))


async def _list_jobs(app: web.Application, _: str, q: JobListQuery, who: Actor) -> JobList:
    jobs = app[JOBS]
    found, next_cursor = await jobs.page(who, q)
    return JobList(jobs=[job_out(j, jobs.env_state(j.id)) for j in found], next_cursor=next_cursor)


async def _get_job(app: web.Application, job_id: str, _: None, who: Actor) -> Job:
    jobs = app[JOBS]
    job = await jobs.get_checked(job_id)
    return job_out(job, jobs.env_state(job.id))


async def _delete_job(app: web.Application, job_id: str, _: None, who: Actor) -> Job:
    jobs = app[JOBS]
    await jobs.delete(job_id, who)
    return job_out(await jobs.get_checked(job_id))


async def _lint(app: web.Application, job_id: str, req: LintRequest, who: Actor) -> LintResult:
    return await app[LINT].lint(job_id, req, who)


async def _test(app: web.Application, job_id: str, req: TestRequest, who: Actor) -> TestResult:
    return await app[TESTS].test(job_id, req, who)


async def _diff(app: web.Application, job_id: str, _: None, who: Actor) -> DiffResult:
    return await app[JOBS].diff(job_id, who)


async def _commit(app: web.Application, job_id: str, req: CommitRequest, who: Actor) -> CommitResult:
    return await app[GITHOST].commit(job_id, req, who)


async def _checks(app: web.Application, job_id: str, q: ChecksQuery, who: Actor) -> ChecksResult:
    return await app[GITHOST].checks(job_id, q.sha, q.wait_s, who)


def _job_tool(tool: AnyTool) -> McpTool:
    exposure = tool.exposure
    assert exposure is not None

    async def run(app: web.Application, job_id: str, req: Any, who: Actor) -> BaseModel:
        result = await app[JOBS].run_tool(job_id, tool, req, who)
        assert isinstance(result, BaseModel)
        return result

    idempotent_read = isinstance(tool, Tool) and tool.idempotent  # a composite (the editor) writes
    return McpTool(
        tool.name,
        "POST",
        route_path(tool),
        exposure.request,
        exposure.result,
        run,
        text=exposure.description,
        read_only=idempotent_read,
        destructive=not idempotent_read,
    )


def mcp_tools() -> tuple[McpTool, ...]:
    return (
        McpTool(
            "create_job",
            "POST",
            "/v1/jobs",
            JobCreate,
            Job,
            _create_job,
            note="Give exactly one of `repo` (GitHub owner/name) and `clone_url`; answers once the job "
            "is ready. Use the job's `id` as `job_id` in the other tools.",
        ),
        McpTool("list_jobs", "GET", "/v1/jobs", JobListQuery, JobList, _list_jobs, read_only=True),
        McpTool("get_job", "GET", "/v1/jobs/{id}", None, Job, _get_job, read_only=True),
        McpTool(
            "delete_job",
            "DELETE",
            "/v1/jobs/{id}",
            None,
            Job,
            _delete_job,
            note="Answers the job, now destroyed.",
            destructive=True,
        ),
        *(_job_tool(t) for t in EXPOSED),
        McpTool("lint", "POST", "/v1/jobs/{id}/lint", LintRequest, LintResult, _lint, read_only=True),
        McpTool("test", "POST", "/v1/jobs/{id}/test", TestRequest, TestResult, _test, read_only=True),
        McpTool("diff", "GET", "/v1/jobs/{id}/diff", None, DiffResult, _diff, read_only=True),
        McpTool("commit", "POST", "/v1/jobs/{id}/commit", CommitRequest, CommitResult, _commit),
        McpTool("checks", "GET", "/v1/jobs/{id}/checks", ChecksQuery, ChecksResult, _checks, read_only=True),
    )
