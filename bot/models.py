"""The control API's answers as the client reads them (../shared/API.md).

These mirror the service's wire models but are written from the client's side: they ignore fields
they do not know (a tolerant reader, so a newer service does not break an older bot) and they never
import the service package — a bot talks to dockyard over HTTP only. A unit test keeps the field
names in step with the contract.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["creating", "ready", "destroyed", "failed"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# --- jobs -----------------------------------------------------------------------------------------


class Limits(_Model):
    memory_mb: int | None = None
    cpus: float | None = None
    pids: int | None = None
    disk_mb: int | None = None
    tool_timeout_s: int | None = None
    lint_timeout_s: int | None = None
    output_cap_kb: int | None = None


class CommitRef(_Model):
    sha: str
    branch: str


class Job(_Model):
    id: str
    status: JobStatus
    repo: str | None = None
    clone_url: str | None = None
    ref: str | None = None
    base_sha: str | None = None
    language: str | None = None
    image: str | None = None
    container_id: str | None = None
    limits: Limits = Field(default_factory=Limits)
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = None
    expires_at: datetime | None = None
    error: str | None = None
    commits: list[CommitRef] = Field(default_factory=list)


class JobList(_Model):
    jobs: list[Job]


class JobEvent(_Model):
    seq: int
    at: datetime
    job_id: str
    type: str
    data: dict[str, Any] = Field(default_factory=dict)


# --- tools ----------------------------------------------------------------------------------------


class _Exec(_Model):
    timed_out: bool = False
    oom_killed: bool = False


class ReadFileResult(_Exec):
    path: str
    content: str
    start_line: int
    end_line: int
    total_lines: int
    size_bytes: int
    truncated: bool


class WriteFileResult(_Exec):
    path: str
    bytes_written: int
    created: bool
    mode: str = "100644"
    ignored: bool = False  # the repository's .gitignore excludes the path: it is not in the diff


class DeleteFileResult(_Exec):
    path: str
    deleted: bool


class MoveFileResult(_Exec):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    mode: str = "100644"
    ignored: bool = False  # the repository's .gitignore excludes `to`: it is not in the diff


class ReplaceInFileResult(_Exec):
    path: str
    replacements: int
    snippet: str


class EditorResult(_Model):
    """`str_replace_based_edit_tool`'s answer: the tool_result's text and whether it is an error."""

    content: str
    is_error: bool


class DirectoryEntry(_Model):
    path: str
    type: str
    size: int


class ListDirectoryResult(_Exec):
    path: str
    entries: list[DirectoryEntry]
    truncated: bool


class SearchMatch(_Model):
    path: str
    line: int
    column: int
    text: str


class SearchResult(_Exec):
    matches: list[SearchMatch]
    truncated: bool
    files_searched: int


class AgentTool(_Model):
    """One entry of `x-agent-tools` in `/openapi.json`: a tool as an agent's model sees it
    (Anthropic's tool shape), derived by the service from its request models."""

    name: str
    description: str
    input_schema: dict[str, Any]


# --- lint, diff, commit, checks -------------------------------------------------------------------


class LintDiagnostic(_Model):
    path: str
    line: int
    column: int
    code: str
    message: str
    severity: str
    new: bool


class LinterRun(_Model):
    name: str
    image: str = ""
    command: list[str] = Field(default_factory=list)
    exit_code: int | None = None
    duration_ms: int = 0
    timed_out: bool = False
    oom_killed: bool = False
    diagnostics: list[LintDiagnostic] = Field(default_factory=list)
    output: str = ""
    output_truncated: bool = False
    error: str | None = None


class LintSkipped(_Model):
    name: str
    language: str = ""
    reason: str = ""


class LintResult(_Model):
    status: Literal["passed", "failed", "error"]
    linters: list[LinterRun]
    skipped: list[LintSkipped] = Field(default_factory=list)

    @property
    def new_diagnostics(self) -> list[tuple[str, LintDiagnostic]]:
        """(linter name, diagnostic) for every diagnostic the change introduced."""
        return [(run.name, d) for run in self.linters for d in run.diagnostics if d.new]


class TestCounts(_Model):
    __test__: ClassVar[bool] = False  # not a pytest class

    passed: int = 0
    failed: int = 0
    skipped: int = 0
    errors: int = 0


class TestFailure(_Model):
    __test__: ClassVar[bool] = False

    id: str
    message: str = ""
    path: str | None = None
    line: int | None = None
    new: bool = True
    flaky: bool = False


class TestResult(_Model):
    __test__: ClassVar[bool] = False

    status: Literal["passed", "failed", "error"]
    command: list[str] = Field(default_factory=list)
    rule: str = ""
    exit_code: int | None = None
    duration_ms: int = 0
    timed_out: bool = False
    oom_killed: bool = False
    counts: TestCounts = Field(default_factory=TestCounts)
    failures: list[TestFailure] = Field(default_factory=list)
    output: str = ""
    output_truncated: bool = False
    skipped_reason: str | None = None
    error: str | None = None

    @property
    def new_failures(self) -> list[TestFailure]:
        """Failures the change introduced (flaky ones, which passed on a re-run, do not count)."""
        return [f for f in self.failures if f.new and not f.flaky]


class DiffFile(_Model):
    path: str
    status: Literal["added", "modified", "deleted"]
    mode: str = "100644"
    old_mode: str | None = None
    binary: bool = False
    additions: int = 0
    deletions: int = 0


class DiffStats(_Model):
    files: int
    additions: int
    deletions: int


class DiffResult(_Exec):
    base_sha: str
    files: list[DiffFile]
    patch: str
    patch_truncated: bool = False
    stats: DiffStats


class PullRequestRef(_Model):
    number: int
    url: str


class CommitResult(_Model):
    commit_sha: str
    branch: str
    files_changed: int
    pull_request: PullRequestRef | None = None


class CheckRun(_Model):
    name: str
    status: str
    conclusion: str | None = None


class ChecksResult(_Model):
    status: Literal["passed", "failed", "pending", "no_ci"]
    sha: str | None = None
    checks: list[CheckRun] = Field(default_factory=list)
    details: dict[str, Any] = Field(default_factory=dict)
