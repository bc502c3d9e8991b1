"""Prometheus metrics, defined in one place and served at `GET /metrics` (unauthenticated).

Most of them are derived from the audit log as records are committed (`observe_audit`), so the
numbers and the audit trail can never disagree: a tool call, a lint run, a timeout, an OOM kill, a
reap and a job creation each count when — and only when — their record is written. The live-jobs
gauge is read from the store at scrape time. The GitHub counters are incremented by
`service.github` (calls by operation and status, retries).

Every request is also counted and timed by route template, method and status
(`dockyard_http_requests_total`, `dockyard_http_request_duration_seconds`), and
`dockyard_build_info{version, python}` is 1.

The default registry is used, so the process collector's `process_resident_memory_bytes`,
`process_cpu_seconds_total` and `process_open_fds` come for free.
"""

from __future__ import annotations

import platform

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from service import __version__
from service.audit import AuditRecord

# Every metric this service defines is named with it (the process collector's `process_*` and
# `python_*` are the client library's standard names and keep them); a test checks.
PREFIX = "dockyard_"

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: noise

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LINT_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

LIVE_JOBS = Gauge(f"{PREFIX}jobs_live", "Jobs whose sandbox is live (creating or ready)")
HELPERS_LIVE = Gauge(f"{PREFIX}helper_channels", "Boxes with an open helper channel (read at scrape)")
HELPER_STARTS = Gauge(
    f"{PREFIX}helper_starts", "Helpers started since the service started (a replaced helper counts)"
)
JOB_CREATIONS = Counter(
    f"{PREFIX}job_creations", "Job creations by outcome (ok, or the error code)", ["outcome"]
)
JOB_ENDS = Counter(f"{PREFIX}job_ends", "Jobs that ended, by how (deleted, reaped, failed)", ["how"])
TOOL_DURATION = Histogram(
    f"{PREFIX}tool_duration_seconds",
    "Duration of one tool exec in a job's box (diff included)",
    ["tool"],
    buckets=_LATENCY_BUCKETS,
)
LINT_DURATION = Histogram(
    f"{PREFIX}lint_duration_seconds",
    "Duration of one linter run in its own box",
    ["linter"],
    buckets=_LINT_BUCKETS,
)
EXEC_TIMEOUTS = Counter(f"{PREFIX}exec_timeouts", "Execs killed at their deadline", ["kind"])
EXEC_OOMS = Counter(f"{PREFIX}exec_oom_kills", "Execs killed by the OOM killer", ["kind"])
REAPED = Counter(
    f"{PREFIX}reaped_sandboxes",
    "Sandboxes removed by the service itself: expired jobs, orphans, vanished boxes",
    ["reason"],
)
ADOPTED = Counter(f"{PREFIX}adopted_sandboxes", "Live sandboxes adopted again at start-up")
AUDIT_RECORDS = Counter(f"{PREFIX}audit_records", "Audit records appended", ["action"])
TRAIL_COMMITS = Counter(
    f"{PREFIX}trail_commits", "Outcome-trail writes by result (committed, unchanged, failed)", ["result"]
)

SIEM_LAG_RECORDS = Gauge(
    f"{PREFIX}siem_lag_records", "Audit records committed but not yet delivered, per SIEM sink", ["sink"]
)
SIEM_LAG_SECONDS = Gauge(
    f"{PREFIX}siem_lag_seconds",
    "Age of the oldest audit record not yet delivered, per SIEM sink (0: caught up)",
    ["sink"],
)
SIEM_DELIVERED = Counter(
    f"{PREFIX}siem_delivered_records", "Audit records delivered, per SIEM sink", ["sink"]
)
SIEM_FAILURES = Counter(
    f"{PREFIX}siem_delivery_failures",
    "Failed deliveries (each retried with backoff), per SIEM sink",
    ["sink"],
)

# For service.github (another module's counters, defined here so /metrics has them from the start).
GITHUB_CALLS = Counter(
    f"{PREFIX}github_calls", "GitHub API calls by operation and HTTP status", ["op", "status"]
)
GITHUB_RETRIES = Counter(f"{PREFIX}github_retries", "GitHub API calls retried (5xx, network, rate limits)")

# HTTP requests, by route TEMPLATE (`/v1/jobs/{id}/tools/read_file`; `unmatched` when no route
# matched), method and status (service.api.middleware.metrics_middleware).
HTTP_REQUESTS = Counter(
    f"{PREFIX}http_requests", "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    f"{PREFIX}http_request_duration_seconds",
    "Time to answer an HTTP request (an event stream: its whole life), by method, route template and status",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
BUILD_INFO = Info(f"{PREFIX}build", "The running service's version and Python (dockyard_build_info = 1)")
BUILD_INFO.info({"version": __version__, "python": platform.python_version()})


def observe_http(method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route, str(status)).observe(seconds)


def _kind(action: str) -> str | None:
    if action.startswith("tool.") or action == "diff":
        return "tool"
    if action == "lint":
        return "lint"
    return None


def observe_audit(record: AuditRecord) -> None:
    """Count what one committed audit record says happened (called by the store after COMMIT)."""
    AUDIT_RECORDS.labels(record.action).inc()
    kind = _kind(record.action)
    if kind is not None:
        seconds = (record.duration_ms or 0) / 1000
        if kind == "tool" and record.duration_ms is not None:  # None: no exec ran
            TOOL_DURATION.labels(record.action.removeprefix("tool.")).observe(seconds)
        elif record.duration_ms is not None:
            LINT_DURATION.labels(str(record.details.get("linter", "unknown"))).observe(seconds)
        if record.details.get("timed_out"):
            EXEC_TIMEOUTS.labels(kind).inc()
        if record.details.get("oom_killed"):
            EXEC_OOMS.labels(kind).inc()
        return
    if record.action == "job.create":
        JOB_CREATIONS.labels(record.outcome).inc()
    elif record.action == "reap":
        REAPED.labels(record.outcome).inc()
        if record.job_id is not None and record.outcome == "expired":
            JOB_ENDS.labels("reaped").inc()
    elif record.action == "job.delete" and record.details.get("was") != "failed":
        JOB_ENDS.labels("deleted").inc()  # a failed job already ended (counted as failed)
    elif record.action == "job.fail":
        JOB_ENDS.labels("failed").inc()
        REAPED.labels(record.outcome).inc()


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
