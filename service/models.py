"""The wire contract as pydantic models (request bodies and answers). `/openapi.json` is generated
from these, so a change here is a change to the contract (../shared/API.md)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

MAX_PATH = 4096
INT_MAX = 2**31 - 1  # the largest integer any request field takes (the spec says so, too)
SEQ_MAX = 2**63 - 1  # a store sequence number (SQLite's INTEGER) at most

JobStatus = Literal["creating", "ready", "destroyed", "failed"]


NAME_MAX = 255  # bytes per path component: the kernel refuses longer names (ENAMETOOLONG)
_HFS_IGNORABLE = re.compile("[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]")
_GIT_NAME = re.compile(r"^(?:\.git|git~1)[. ]*$|^\.git[. ]*:")


def is_git_name(component: str) -> bool:
    """A name git refuses to track (`verify_path`): `.git` in any case, with the trailing dots and
    spaces NTFS drops, its 8.3 alias, an NTFS stream, or HFS+'s ignorable code points inside.
    The in-box helper refuses the same names."""
    return bool(_GIT_NAME.match(_HFS_IGNORABLE.sub("", component).lower()))


def _check_text(value: str) -> str:
    """Text the box receives as text (a path, a pattern): no NUL byte, no lone surrogate."""
    if "\x00" in value:
        raise ValueError("may not contain NUL bytes")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"is not valid Unicode text (a lone surrogate at {e.start})") from None
    return value


def _check_path(value: str) -> str:
    _check_text(value)
    for part in value.split("/"):
        if is_git_name(part):
            raise PydanticCustomError(
                "path_outside_workspace", "the .git folder is not accessible: {path}", {"path": value}
            )
        size = len(part.encode("utf-8", "surrogatepass"))
        if size > NAME_MAX:
            raise PydanticCustomError(
                "name_too_long",
                "a path component is {size} bytes, over the {max_bytes}-byte limit",
                {"size": size, "max_bytes": NAME_MAX},
            )
    return value


NO_NUL = "^[^\\x00]*$"  # JSON Schema's words for "no NUL character" (the validators' own rule)

RepoPath = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_PATH),
    AfterValidator(_check_path),
    Field(description="repository-relative POSIX path", json_schema_extra={"pattern": NO_NUL}),
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ---------------------------------------------------------------------------------------


class ErrorBody(_Answer):
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(_Answer):
    error: ErrorBody


# --- jobs -----------------------------------------------------------------------------------------


class LimitsRequest(_Request):
    memory_mb: int | None = Field(None, ge=16, le=INT_MAX)
    cpus: float | None = Field(None, gt=0, le=4096)
    pids: int | None = Field(None, ge=16, le=INT_MAX)
    disk_mb: int | None = Field(None, ge=16, le=INT_MAX)
    tool_timeout_s: int | None = Field(None, ge=1, le=INT_MAX)
    lint_timeout_s: int | None = Field(None, ge=1, le=INT_MAX)
    output_cap_kb: int | None = Field(None, ge=16, le=INT_MAX)


class Clamped(_Answer):
    requested: float
    maximum: float


class LimitsOut(_Answer):
    memory_mb: int
    cpus: float
    pids: int
    disk_mb: int
    tool_timeout_s: int
    lint_timeout_s: int
    output_cap_kb: int
    clamped: dict[str, Clamped] = Field(
        default_factory=dict, description="requested limits above the ops maximum, cut to it"
    )


_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
MAX_LABELS = 32
MAX_LABEL_VALUE = 256
# What `_check_labels` enforces, in JSON Schema's words.
_LABELS_SCHEMA: dict[str, Any] = {
    "maxProperties": MAX_LABELS,
    "propertyNames": {"pattern": r"^(?!dockyard\.)" + _LABEL_KEY.pattern[1:]},
    "additionalProperties": {"type": "string", "maxLength": MAX_LABEL_VALUE, "pattern": NO_NUL},
}


def _check_labels(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels")
    for k, v in value.items():
        if not _LABEL_KEY.fullmatch(k):
            raise ValueError(f"label key {k!r}: use letters, digits, '.', '_', '-', '/' (at most 63)")
        if k.startswith("dockyard."):
            raise ValueError(f"label key {k!r}: the dockyard. prefix is reserved")
        if len(v) > MAX_LABEL_VALUE or "\x00" in v:
            raise ValueError(f"label {k!r}: values are at most 256 characters, no NUL")
    return value


# JobCreate takes exactly one source: `repo` or `clone_url` (the other absent or null).
_ONE_SOURCE: dict[str, Any] = {
    "oneOf": [
        {"required": [given], "properties": {given: {"type": "string"}, other: {"type": "null"}}}
        for given, other in (("repo", "clone_url"), ("clone_url", "repo"))
    ]
}


class JobCreate(_Request):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SOURCE)

    repo: (
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", max_length=200)] | None
    ) = Field(None, description="GitHub owner/name")
    ref: (
        Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^[^\x00-\x20~^:?*\[\\]+$")]
        | None
    ) = Field(None, description="branch, tag or commit sha; default: the repository's default branch")
    clone_url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = Field(
        None, description="instead of repo: any git URL the service may reach"
    )
    language: Annotated[str, StringConstraints(max_length=64)] | None = None
    limits: LimitsRequest | None = None
    ttl_s: int = Field(3600, ge=60, le=7 * 24 * 3600)
    labels: Annotated[dict[str, str], AfterValidator(_check_labels)] = Field(
        default_factory=dict, json_schema_extra=_LABELS_SCHEMA
    )

    @model_validator(mode="after")
    def _one_source(self) -> JobCreate:
        if (self.repo is None) == (self.clone_url is None):
            raise ValueError("give exactly one of repo (owner/name) and clone_url")
        return self


class CommitRef(_Answer):
    sha: str
    branch: str


class Job(_Answer):
    id: str
    status: JobStatus
    tenant: str | None = Field(None, description="the tenant of the token that created the job")
    repo: str | None
    clone_url: str | None = Field(None, description="the clone URL for clone_url jobs, without credentials")
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
    env: EnvState | None = Field(
        None, description="the dependency environment (building/ready/none/failed); null when unknown"
    )


class JobListQuery(_Request):
    status: list[JobStatus] | None = Field(None, description="only jobs in these statuses (repeatable)")
    label: list[Annotated[str, StringConstraints(pattern=r"^[^:]+:.*$")]] | None = Field(
        None, description="key:value; repeatable, all must match"
    )
    tenant: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="auditors and admins: only this tenant's jobs (a bot always sees only its own)"
    )
    limit: int = Field(100, ge=1, le=1000)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = Field(
        None, description="the next_cursor of the previous page (opaque; send the same filters with it)"
    )


class JobList(_Answer):
    jobs: list[Job]
    next_cursor: str | None = Field(
        None, description="pass as `cursor` for the next page; null: this was the last page"
    )


class JobEvent(_Answer):
    seq: int
    at: datetime
    job_id: str
    type: str
    data: dict[str, Any]


# --- tools ----------------------------------------------------------------------------------------


class _ExecAnswer(_Answer):
    """A tool that ran out of time or memory is a result, not an error (the job stays usable)."""

    timed_out: bool = Field(False, description="the tool hit its timeout and was killed")
    oom_killed: bool = Field(False, description="the tool hit the job's memory cap and was killed")


class ReadFileRequest(_Request):
    path: RepoPath
    start_line: int = Field(1, ge=1, le=INT_MAX)
    end_line: int | None = Field(None, ge=1, le=INT_MAX)
    numbered: bool = False


class ReadFileResult(_ExecAnswer):
    path: str
    content: str
    start_line: int
    end_line: int
    total_lines: int
    size_bytes: int
    truncated: bool


GitFileMode = Literal["100644", "100755", "120000"]


class WriteFileRequest(_Request):
    path: RepoPath
    content: str
    executable: bool | None = Field(
        None, description="true: 100755, false: 100644, null: keep an existing file's mode (new: 100644)"
    )


class WriteFileResult(_ExecAnswer):
    path: str
    bytes_written: int
    created: bool
    mode: GitFileMode = "100644"
    ignored: bool = Field(False, description="the repository's .gitignore excludes the path: not in the diff")


class DeleteFileRequest(_Request):
    path: RepoPath


class DeleteFileResult(_ExecAnswer):
    path: str
    deleted: bool


class MoveFileRequest(_Request):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: RepoPath = Field(alias="from")
    to: RepoPath
    overwrite: bool = False


class MoveFileResult(_ExecAnswer):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    mode: GitFileMode = "100644"
    ignored: bool = Field(False, description="the repository's .gitignore excludes `to`: not in the diff")


class ReplaceInFileRequest(_Request):
    path: RepoPath
    old: str = Field(min_length=1)
    new: str
    expected_count: int = Field(1, ge=1, le=10_000)


class ReplaceInFileResult(_ExecAnswer):
    path: str
    replacements: int
    snippet: str


class ListDirectoryRequest(_Request):
    path: RepoPath = "."
    depth: int = Field(1, ge=1, le=20)


class DirectoryEntry(_Answer):
    path: str
    type: Literal["file", "dir", "symlink", "other"]
    size: int


class ListDirectoryResult(_ExecAnswer):
    path: str
    entries: list[DirectoryEntry]
    truncated: bool


BoxText = Annotated[str, AfterValidator(_check_text), Field(json_schema_extra={"pattern": NO_NUL})]


class SearchRequest(_Request):
    pattern: Annotated[BoxText, StringConstraints(min_length=1, max_length=4096)]
    path: RepoPath = "."
    glob: Annotated[BoxText, StringConstraints(min_length=1, max_length=1024)] | None = None
    fixed_string: bool = False
    case_sensitive: bool = True
    max_results: int = Field(100, ge=1, le=10_000)


class SearchMatch(_Answer):
    path: str
    line: int
    column: int
    text: str


class SearchResult(_ExecAnswer):
    matches: list[SearchMatch]
    truncated: bool
    files_searched: int


# --- Claude's text editor tool (str_replace_based_edit_tool, text_editor_20250728) ---------------

EditorCommand = Literal["view", "create", "str_replace", "insert"]


class EditorRequest(_Request):
    """The input of Anthropic's text editor tool, verbatim. `path`: `/workspace/…` (where the
    repository is checked out) or repository-relative; any other absolute path is outside."""

    command: EditorCommand
    path: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATH)]
    view_range: list[int] | None = Field(
        None,
        min_length=2,
        max_length=2,
        description="view: [start, end], 1-based inclusive; end -1 = to the end",
    )
    file_text: str | None = Field(None, description="create: the whole file")
    old_str: str | None = Field(None, description="str_replace: exact text that must occur exactly once")
    new_str: str | None = Field(None, description="str_replace: its replacement (default empty)")
    insert_line: int | None = Field(
        None, ge=0, le=INT_MAX, description="insert: after this line (0: at the start)"
    )
    insert_text: str | None = Field(
        None, description="insert: the text (older docs call it `new_str`: accepted)"
    )

    def missing(self) -> list[str]:
        """The fields this command needs that the call left out. Not a schema rule: the model's
        mistake is answered as a tool error it can read (`is_error: true`), as Anthropic's own
        implementation of the tool does, so every body the schema admits gets a 200."""
        return {
            "view": [],
            "create": ["file_text"] if self.file_text is None else [],
            "str_replace": ["old_str"] if self.old_str is None else [],
            "insert": [
                *(["insert_line"] if self.insert_line is None else []),
                *(["insert_text"] if self.insert_text is None and self.new_str is None else []),
            ],
        }[self.command]


class EditorResult(_Answer):
    """What a `tool_result` carries: the text, and whether the model's call failed."""

    content: str
    is_error: bool


# --- diff -----------------------------------------------------------------------------------------


class DiffFile(_Answer):
    path: str
    status: Literal["added", "modified", "deleted"]
    mode: Literal["100644", "100755", "120000", "160000"]
    old_mode: str | None = Field(None, description="the mode at base_sha when it differs")
    binary: bool
    additions: int = Field(description="lines added (git numstat; 0 for a binary file)")
    deletions: int = Field(description="lines removed (git numstat; 0 for a binary file)")


class DiffStats(_Answer):
    files: int
    additions: int
    deletions: int


class DiffResult(_ExecAnswer):
    base_sha: str
    files: list[DiffFile]
    patch: str
    patch_truncated: bool
    stats: DiffStats
    patch_sha256: str | None = Field(
        None,
        description="sha256 of the whole patch as git printed it (a commit's audit record names the "
        "same hash); null when git's output was cut",
    )
    kept: bool = Field(False, description="the job has ended: this is the diff kept when it did")


# --- service --------------------------------------------------------------------------------------


class Health(_Answer):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Any] = Field(default_factory=dict)


class ImageInfo(_Answer):
    name: str
    tag: str
    present: bool


class LinterInfo(_Answer):
    name: str
    image: str
    command: list[str]
    parser: str
    files: list[str]
    enabled_by: list[str]
    default: bool
    timeout_s: int | None
    runtime: str | None


class LanguageInfo(_Answer):
    name: str
    image: str
    detect: list[str]
    linters: list[LinterInfo] = Field(default_factory=list)


class ImagesResult(_Answer):
    images: list[ImageInfo]
    languages: list[LanguageInfo]
    default_language: str
    limits: dict[str, Any]


# --- lint -----------------------------------------------------------------------------------------


class LintRequest(_Request):
    paths: list[RepoPath] | None = Field(None, max_length=5000, description="null: the files changed so far")
    linters: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        None, description="null: those the repository's own config selects"
    )
    all_files: bool = Field(False, description="lint every file of the repository, not only the changed ones")


class LintDiagnostic(_Answer):
    path: str
    line: int
    column: int
    code: str
    message: str
    severity: str
    new: bool = Field(description="not reported by the same linter on the files at base_sha")


class LinterRun(_Answer):
    name: str
    language: str
    rule: str = Field(description="why this linter was picked (the repo's config file, or the default)")
    image: str
    command: list[str]
    files: int = Field(description="how many files it checked")
    exit_code: int | None
    duration_ms: int
    timed_out: bool
    oom_killed: bool
    diagnostics: list[LintDiagnostic]
    new_count: int
    base_checked: bool = Field(description="the same linter also ran on the files as they were at base_sha")
    output: str
    output_truncated: bool
    error: str | None = Field(None, description="why the linter could not give a verdict")
    tool_source: Literal["repo", "image"] = Field(
        "image", description="repo: the repository's own tool from its environment; image: the image's"
    )
    version: str | None = Field(None, description="the tool's version as it reports it")
    clamped: dict[str, Clamped] = Field(
        default_factory=dict,
        description="this linter's own limits (its ops entry) lowered to the job's or the ops maximum: "
        "requested → the value applied",
    )


class LintSkipped(_Answer):
    name: str
    language: str
    reason: str


class LintResult(_Answer):
    status: Literal["passed", "failed", "error"]
    linters: list[LinterRun]
    skipped: list[LintSkipped] = Field(default_factory=list)
    clamped: dict[str, Clamped] = Field(
        default_factory=dict, description="the job's requested lint limits above the ops maximum, cut to it"
    )


# --- tests ----------------------------------------------------------------------------------------


class TestRequest(_Request):
    __test__: ClassVar[bool] = False  # not a pytest class

    paths: list[RepoPath] | None = Field(
        None, max_length=1000, description="test files or pytest node ids, or go packages; null: all"
    )
    command: list[Annotated[str, StringConstraints(min_length=1, max_length=4096)]] | None = Field(
        None, min_length=1, max_length=256, description="only where ops allow it (else 403 forbidden)"
    )
    timeout_s: int | None = Field(None, ge=1, description="clamped to the language's tests.timeout_s")


class TestCounts(_Answer):
    __test__: ClassVar[bool] = False

    passed: int
    failed: int
    skipped: int
    errors: int


class TestFailure(_Answer):
    __test__: ClassVar[bool] = False

    id: str = Field(description="the runner's id: a pytest node id, pkg::TestName, suite > test")
    message: str
    path: str | None
    line: int | None
    new: bool = Field(description="that test passed, or did not exist, at base_sha")
    flaky: bool = Field(False, description="new, but passed when re-run once: not counted")


class TestLimitsOut(_Answer):
    __test__: ClassVar[bool] = False

    timeout_s: int
    memory_mb: int
    cpus: float
    pids: int
    tmp_mb: int = Field(description="the box's /tmp, which holds the copy of the workspace")


class TestResult(_Answer):
    __test__: ClassVar[bool] = False

    status: Literal["passed", "failed", "error"] = Field(
        description="failed only when some failure is new (not flaky); passed with skipped_reason "
        "when nothing could be run"
    )
    language: str
    command: list[str]
    rule: str = Field(description="why this command: the repo's config, ops' default, or the request")
    image: str | None
    tool_source: str | None = Field(description="env | image+env | image: whose runner and packages")
    env: str | None = Field(description="the job's dependency environment status at the run")
    exit_code: int | None
    duration_ms: int
    timed_out: bool
    oom_killed: bool
    counts: TestCounts
    failures: list[TestFailure]
    output: str
    output_truncated: bool
    skipped_reason: str | None
    base_checked: bool = Field(description="the same selection also ran at base_sha")
    limits: TestLimitsOut | None = Field(description="the caps the run got")
    clamped: list[str] = Field(description="requested values lowered to the ops maxima")
    error: str | None = Field(description="why there is no verdict, or what weakened it")


# --- config (admin) -------------------------------------------------------------------------------


class ConfigView(_Answer):
    images_config: str = Field(description="path of the ops file in use")
    config: dict[str, Any] = Field(description="the validated ops file")
    images: dict[str, str] = Field(description="image name → content-hash tag")
    settings: dict[str, Any] = Field(description="service settings (no secrets)")


# --- commit, checks -------------------------------------------------------------------------------


def _check_branch(value: str) -> str:
    bad = (
        value.startswith(("/", "-", "."))
        or value.endswith(("/", ".", ".lock"))
        or any(s in value for s in ("//", "..", "@{", "/."))
        or not re.fullmatch(r"[A-Za-z0-9._/+-]+", value)
    )
    if bad:
        raise ValueError(f"{value!r} is not a valid branch name")
    return value


# What `_check_branch` enforces, in JSON Schema's words.
_BRANCH_PATTERN = r"^(?![/.-])(?!.*(?:\.\.|//|/\.))(?!.*(?:[/.]|\.lock)$)[A-Za-z0-9._/+-]+$"

BranchName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    AfterValidator(_check_branch),
    Field(json_schema_extra={"pattern": _BRANCH_PATTERN}),
]


class PullRequestRequest(_Request):
    title: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    body: Annotated[str, StringConstraints(max_length=65536)] = ""
    draft: bool = True


class CommitRequest(_Request):
    branch: BranchName
    message: Annotated[str, StringConstraints(min_length=1, max_length=65536)]
    base_branch: BranchName | None = Field(None, description="the pull request's base (default: the default)")
    pull_request: PullRequestRequest | None = None


class PullRequestRef(_Answer):
    number: int
    url: str


class CommitResult(_Answer):
    commit_sha: str
    branch: str
    files_changed: int
    pull_request: PullRequestRef | None


class CheckRunInfo(_Answer):
    name: str
    status: str
    conclusion: str | None


class ChecksQuery(_Request):
    sha: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")] | None = Field(
        None, description="default: the job's latest commit"
    )
    wait_s: float = Field(0, ge=0, le=3600)


class ChecksResult(_Answer):
    status: Literal["passed", "failed", "pending", "no_ci"]
    sha: str
    checks: list[CheckRunInfo]
    details: dict[str, Any] = Field(default_factory=dict)


# --- audit (auditor, admin) -----------------------------------------------------------------------


class AuditQuery(_Request):
    job_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    actor: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        None, description="an actor name (bot-1a2b3c4d5e6f) or a role (bot, auditor, admin, system)"
    )
    action: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="a dotted action (tool.read_file); a trailing * matches a prefix (tool.*)"
    )
    since: datetime | None = Field(None, description="RFC 3339: records at or after this time")
    until: datetime | None = Field(None, description="RFC 3339: records at or before this time")
    tenant: Annotated[str, StringConstraints(max_length=64)] | None = Field(
        None, description="only records of this tenant"
    )
    path: Annotated[str, StringConstraints(max_length=4096)] | None = Field(
        None, description="only records of tools that touched this repo-relative path"
    )
    after: int = Field(0, ge=0, le=SEQ_MAX, description="page cursor: records with seq greater than this")
    limit: int = Field(100, ge=1, le=1000)


class AuditRecordOut(_Answer):
    seq: int
    at: str
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
    details: dict[str, Any] = Field(
        default_factory=dict, description="timed_out/oom_killed flags, path, linter; never contents or tokens"
    )
    prev_hash: str
    hash: str
    tenant: str | None = Field(None, description="the tenant whose job (or token) this record concerns")
    key_id: str | None = Field(None, description="the audit key that authenticated this record")
    mac: str | None = Field(None, description="HMAC-SHA256 over seq and hash with that key")
    path: str | None = Field(None, description="the repository path a tool call named")
    content_sha256: str | None = Field(None, description="sha256 of what a tool wrote or returned")
    before_sha256: str | None = Field(
        None, description="sha256 of the file before an edit, move or delete (null: it did not exist)"
    )


class AuditList(_Answer):
    records: list[AuditRecordOut]
    next_after: int | None = Field(
        None, description="pass as `after` for the next page; null when this page is the last"
    )


class AuditVerifyResult(_Answer):
    ok: bool
    records: int = Field(description="records checked (up to the first broken one)")
    first_bad_seq: int | None = Field(None, description="the first altered or missing record")
    reason: str | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    keyed: bool = Field(
        False, description="the service holds an audit key and every record since keying verified with it"
    )


# --- dependency environments ---------------------------------------------------------------------

EnvStatus = Literal["building", "ready", "none", "failed"]


class EnvRefusal(_Answer):
    """Something the repository asked for that the environment policy refused or ignored."""

    kind: str = Field(
        description="index_redirect | editable | vcs | direct_url | local_path | option | sdist_only | "
        "npmrc | registry_redirect | local_replace"
    )
    file: str
    detail: str


class EnvState(_Answer):
    """A job's dependency environment: mounted read-only at /env in its boxes once `ready`."""

    status: EnvStatus
    key: str | None = Field(None, description="sha256 of image, ecosystem, manifests and policy version")
    ecosystem: str | None = None
    reason: str | None = Field(None, description="why none/failed; for ready, what to know about it")
    refused: list[EnvRefusal] = Field(default_factory=list)
    duration_ms: int | None = Field(None, description="build time (a cache hit: the original build's)")
    size_mb: float | None = None
