"""Every operation of the control API, declared once: its method and path, its answer model, whether
repeating it is harmless, and which SDK method calls it. Both clients build their requests from this
table, and tests/integration/test_sdk_drift.py checks it against the live `/openapi.json` (an
operation the table does not map fails the test, as does a request field no SDK method takes)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from dockyard_client import models as m


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    sdk: str  # the SDK method, as "<surface>.<name>" (surfaces: see _sync.SURFACES / _async.SURFACES)
    answer: type[BaseModel] | None = None  # None: no JSON answer (204, text, SSE)
    idempotent: bool = False  # repeating it cannot do harm: retried on a lost answer, 429 and 503
    keyed: bool = False  # sends an Idempotency-Key (a fresh one per logical call), so it is retried too
    ok_statuses: frozenset[int] = frozenset()  # non-2xx statuses that carry the answer model
    wire_names: Mapping[str, str] = field(default_factory=dict)  # body/query field -> SDK parameter
    internal: frozenset[str] = frozenset()  # body/query fields the SDK fills itself (cursors)

    def url_path(self, **params: str) -> str:
        return self.path.format(**params)


_JOB = "/v1/jobs/{id}"
_TOOL = _JOB + "/tools/"

HEALTH = Endpoint("GET", "/healthz", "client.health", m.Health, idempotent=True)
READY = Endpoint("GET", "/readyz", "client.ready", m.Health, idempotent=True, ok_statuses=frozenset({503}))
OPENAPI = Endpoint("GET", "/openapi.json", "client.openapi", idempotent=True)
METRICS = Endpoint("GET", "/metrics", "client.metrics", idempotent=True)
AUDIT_LIST = Endpoint(
    "GET", "/v1/audit", "audit.list", m.AuditList, idempotent=True, wire_names={"limit": "page_size"},
    internal=frozenset({"after"}),
)
AUDIT_VERIFY = Endpoint("GET", "/v1/audit/verify", "audit.verify", m.AuditVerifyResult, idempotent=True)
IMAGES = Endpoint("GET", "/v1/images", "images.list", m.ImagesResult, idempotent=True)
CONFIG_GET = Endpoint("GET", "/v1/config", "config.get", m.ConfigView, idempotent=True)
CONFIG_RELOAD = Endpoint("POST", "/v1/config/reload", "config.reload", m.ConfigView, idempotent=True)
JOB_CREATE = Endpoint("POST", "/v1/jobs", "jobs.create", m.Job, keyed=True)
JOB_LIST = Endpoint(
    "GET", "/v1/jobs", "jobs.list", m.JobList, idempotent=True,
    wire_names={"label": "labels", "limit": "page_size"}, internal=frozenset({"cursor"}),
)
JOB_GET = Endpoint("GET", _JOB, "jobs.get", m.Job, idempotent=True)
JOB_DELETE = Endpoint("DELETE", _JOB, "job.delete", idempotent=True)
JOB_EVENTS = Endpoint("GET", _JOB + "/events", "job.events", idempotent=True)
JOB_LOGS = Endpoint("GET", _JOB + "/logs", "job.logs", idempotent=True)
JOB_DIFF = Endpoint("GET", _JOB + "/diff", "job.diff", m.DiffResult, idempotent=True)
JOB_COMMIT = Endpoint("POST", _JOB + "/commit", "job.commit", m.CommitResult, keyed=True)
JOB_CHECKS = Endpoint("GET", _JOB + "/checks", "job.checks", m.ChecksResult, idempotent=True)
JOB_LINT = Endpoint("POST", _JOB + "/lint", "job.lint", m.LintResult, idempotent=True)
JOB_TEST = Endpoint("POST", _JOB + "/test", "job.test", m.TestResult, idempotent=True)
READ_FILE = Endpoint("POST", _TOOL + "read_file", "files.read", m.ReadFileResult, idempotent=True)
# Writing the same bytes again leaves the same file: harmless to repeat.
WRITE_FILE = Endpoint("POST", _TOOL + "write_file", "files.write", m.WriteFileResult, idempotent=True)
# An edit, a delete and a move are never repeated: a replay of one that worked would apply twice or 404.
REPLACE_IN_FILE = Endpoint("POST", _TOOL + "replace_in_file", "files.replace", m.ReplaceInFileResult)
DELETE_FILE = Endpoint("POST", _TOOL + "delete_file", "files.delete", m.DeleteFileResult)
MOVE_FILE = Endpoint(
    "POST", _TOOL + "move_file", "files.move", m.MoveFileResult,
    wire_names={"from": "from_path", "to": "to_path"},
)
LIST_DIRECTORY = Endpoint(
    "POST", _TOOL + "list_directory", "files.list", m.ListDirectoryResult, idempotent=True
)
SEARCH = Endpoint("POST", _TOOL + "search", "files.search", m.SearchResult, idempotent=True)
# Anthropic's text editor tool, input verbatim; only `view` is repeated (see the clients' edit()).
EDIT = Endpoint("POST", _TOOL + "str_replace_based_edit_tool", "job.edit", m.EditResult)

ENDPOINTS: tuple[Endpoint, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Endpoint))
BY_OPERATION: Mapping[tuple[str, str], Endpoint] = {(e.method, e.path): e for e in ENDPOINTS}

# Operations of the service that are not the client API, with the reason.
NOT_FOR_CLIENTS: Mapping[tuple[str, str], str] = {
    ("GET", "/docs"): "the API reference page, for a browser",
    ("GET", "/mcp"): "MCP clients speak to /mcp with the mcp SDK",
    ("POST", "/mcp"): "MCP clients speak to /mcp with the mcp SDK",
    ("DELETE", "/mcp"): "MCP clients speak to /mcp with the mcp SDK",
}
