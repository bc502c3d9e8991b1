"""The control API's answers as the client reads them.

Written from the client's side and kept in step with the live `/openapi.json` by a test
(tests/integration/test_sdk_drift.py: field names, required-ness and JSON types). They ignore fields
they do not know, so an older client keeps working against a newer service; the test is what tells
the SDK's maintainers a field was added.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["creating", "ready", "destroyed", "failed"]
END_EVENTS = frozenset({"job.destroyed", "job.failed"})
TERMINAL_STATUSES = frozenset({"destroyed", "failed"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


# --- service ----------------------------------------------------------------------------------------


class Health(_Model):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Any] = Field(default_factory=dict)


class ImageInfo(_Model):
    name: str
    tag: str
    present: bool


class LinterInfo(_Model):
    name: str
    image: str
    command: list[str]
    parser: str
    files: list[str]
    enabled_by: list[str]
    default: bool
    timeout_s: int | None
    runtime: str | None


class LanguageInfo(_Model):
    name: str
    image: str
    detect: list[str]
    linters: list[LinterInfo] = Field(default_factory=list)


class ImagesResult(_Model):
    images: list[ImageInfo]
    languages: list[LanguageInfo]
    default_language: str
    limits: dict[str, Any]


class ConfigView(_Model):
    images_config: str
    config: dict[str, Any]
    images: dict[str, str]
    settings: dict[str, Any]


class AgentTool(_Model):
    """One entry of `x-agent-tools` in `/openapi.json`: a tool as an agent's model sees it
    (Anthropic's tool shape), derived by the service from its request models."""

    name: str
    description: str
    input_schema: dict[str, Any]


# --- jobs -------------------------------------------------------------------------------------------


class Clamped(_Model):
    requested: float
    maximum: float


class LimitsOut(_Model):
    memory_mb: int
    cpus: float
    pids: int
    disk_mb: int
    tool_timeout_s: int
    lint_timeout_s: int
    output_cap_kb: int
    clamped: dict[str, Clamped] = Field(default_factory=dict)


class CommitRef(_Model):
    sha: str
    branch: str


class EnvRefusal(_Model):
    kind: str
    file: str
    detail: str


class EnvState(_Model):
    status: Literal["building", "ready", "none", "failed"]
    key: str | None = None
    ecosystem: str | None = None
    reason: str | None = None
    refused: list[EnvRefusal] = Field(default_factory=list)
    duration_ms: int | None = None
    size_mb: float | None = None


class Job(_Model):
    id: str
    status: JobStatus
    tenant: str | None = None
    repo: str | None
    clone_url: str | None = None
    ref: str | None
    base_sha: str | None
    language: str | None
    image: str | None
    container_id: str | None
    limits: LimitsOut
    labels: dict[str, str]
    created_at: datetime
    expires_at: datetime
    error: str | None
    commits: list[CommitRef]
    env: EnvState | None = None


class JobList(_Model):
    jobs: list[Job]
    next_cursor: str | None = None  # absent from a service older than cursor paging: the last page


class JobEvent(_Model):
    """One event of `GET /v1/jobs/{id}/events` (its SSE `id` is `seq`, its SSE `event` is `type`)."""

    seq: int
    at: datetime
    job_id: str
    type: str
    data: dict[str, Any]


class ReplayTruncated(_Model):
    """The stream's notice that older events after Last-Event-ID were left out of the replay
    (`data`: after_seq, first_seq, replay_max). It has no seq: it is not an event of the job."""

    job_id: str
    type: Literal["replay.truncated"] = "replay.truncated"
    data: dict[str, Any] = Field(default_factory=dict)


# --- tools ------------------------------------------------------------------------------------------


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


FileMode = Literal["100644", "100755", "120000"]


class WriteFileResult(_Exec):
    path: str
    bytes_written: int
    created: bool
    mode: FileMode = "100644"
    ignored: bool = False  # the repository's .gitignore excludes the path: it is not in the diff


class DeleteFileResult(_Exec):
    path: str
    deleted: bool


class MoveFileResult(_Exec):
    from_: str = Field(alias="from")
    to: str
    mode: FileMode = "100644"
    ignored: bool = False


class ReplaceInFileResult(_Exec):
    path: str
    replacements: int
    snippet: str


class DirectoryEntry(_Model):
    path: str
    type: Literal["file", "dir", "symlink", "other"]
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


class EditResult(_Model):
    """`str_replace_based_edit_tool`: the text a `tool_result` should carry, and whether it is an error."""

    content: str
    is_error: bool


# --- lint, test, diff, commit, checks ---------------------------------------------------------------


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
    language: str
    rule: str
    image: str
    command: list[str]
    files: int
    exit_code: int | None
    duration_ms: int
    timed_out: bool
    oom_killed: bool
    diagnostics: list[LintDiagnostic]
    new_count: int
    base_checked: bool
    output: str
    output_truncated: bool
    error: str | None = None
    tool_source: Literal["repo", "image"] = "image"
    version: str | None = None
    clamped: dict[str, Clamped] = Field(default_factory=dict)


class LintSkipped(_Model):
    name: str
    language: str
    reason: str


class LintResult(_Model):
    status: Literal["passed", "failed", "error"]
    linters: list[LinterRun]
    skipped: list[LintSkipped] = Field(default_factory=list)
    clamped: dict[str, Clamped] = Field(default_factory=dict)

    @property
    def new_diagnostics(self) -> list[tuple[str, LintDiagnostic]]:
        """(linter name, diagnostic) for every diagnostic the change introduced."""
        return [(run.name, d) for run in self.linters for d in run.diagnostics if d.new]


class TestCounts(_Model):
    __test__: ClassVar[bool] = False  # not a pytest class

    passed: int
    failed: int
    skipped: int
    errors: int


class TestFailure(_Model):
    __test__: ClassVar[bool] = False

    id: str
    message: str
    path: str | None
    line: int | None
    new: bool
    flaky: bool = False


class TestLimitsOut(_Model):
    __test__: ClassVar[bool] = False

    timeout_s: int
    memory_mb: int
    cpus: float
    pids: int
    tmp_mb: int


class TestResult(_Model):
    __test__: ClassVar[bool] = False

    status: Literal["passed", "failed", "error"]
    language: str
    command: list[str]
    rule: str
    image: str | None
    tool_source: str | None
    env: str | None
    exit_code: int | None
    duration_ms: int
    timed_out: bool
    oom_killed: bool
    counts: TestCounts
    failures: list[TestFailure]
    output: str
    output_truncated: bool
    skipped_reason: str | None
    base_checked: bool
    limits: TestLimitsOut | None
    clamped: list[str]
    error: str | None

    @property
    def new_failures(self) -> list[TestFailure]:
        """Failures the change introduced (flaky ones, which passed on a re-run, do not count)."""
        return [f for f in self.failures if f.new and not f.flaky]


class DiffFile(_Model):
    path: str
    status: Literal["added", "modified", "deleted"]
    mode: Literal["100644", "100755", "120000", "160000"]
    old_mode: str | None = None
    binary: bool
    additions: int
    deletions: int


class DiffStats(_Model):
    files: int
    additions: int
    deletions: int


class DiffResult(_Exec):
    base_sha: str
    files: list[DiffFile]
    patch: str
    patch_truncated: bool
    stats: DiffStats
    patch_sha256: str | None = None
    kept: bool = False


class PullRequestRef(_Model):
    number: int
    url: str


class CommitResult(_Model):
    commit_sha: str
    branch: str
    files_changed: int
    pull_request: PullRequestRef | None


class CheckRunInfo(_Model):
    name: str
    status: str
    conclusion: str | None


class ChecksResult(_Model):
    status: Literal["passed", "failed", "pending", "no_ci"]
    sha: str
    checks: list[CheckRunInfo]
    details: dict[str, Any] = Field(default_factory=dict)


# --- audit ------------------------------------------------------------------------------------------


class AuditRecord(_Model):
    seq: int
    at: datetime
    actor: str
    role: str
    job_id: str | None
    action: str
    container_id: str | None
    argv: list[str] | None
    exit_code: int | None
    duration_ms: int | None
    bytes_in: int | None
    bytes_out: int | None
    outcome: str
    details: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str
    tenant: str | None = None
    key_id: str | None = None
    mac: str | None = None
    path: str | None = None
    content_sha256: str | None = None
    before_sha256: str | None = None


class AuditList(_Model):
    records: list[AuditRecord]
    next_after: int | None = None


class AuditVerifyResult(_Model):
    ok: bool
    records: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    keyed: bool = False
