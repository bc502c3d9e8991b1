"""Observability: Prometheus metrics at /metrics (public, like /healthz) that move with what
happens, and structured JSON logs carrying the request id and the job id."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.docker


def scrape(anon_api) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = anon_api.get("/metrics")
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_are_public_and_name_every_family(anon_api):
    text = anon_api.get("/metrics").text
    for family in (
        "dockyard_jobs_live",
        "dockyard_job_creations_total",
        "dockyard_tool_duration_seconds",
        "dockyard_lint_duration_seconds",
        "dockyard_exec_timeouts_total",
        "dockyard_exec_oom_kills_total",
        "dockyard_reaped_sandboxes_total",
        "dockyard_github_calls_total",
        "dockyard_github_retries_total",
        "process_resident_memory_bytes",
    ):
        assert re.search(rf"^# TYPE {family.removesuffix('_total')}(_total)? ", text, re.M), family
    assert not re.search(r"job_[0-9a-f]{16}", text)  # counts only: no job ids, paths or tokens


def test_metrics_move_with_jobs_tools_and_timeouts(api, anon_api, make_job, dexec, tmp_path):
    before = scrape(anon_api)
    job = make_job(limits={"tool_timeout_s": 1})
    api.read(job["id"], "README.md")
    api.read(job["id"], "README.md")
    dexec.ok(job, "mkfifo /workspace/fifo")
    assert api.tool_ok(job["id"], "search", pattern="x", path="fifo")["timed_out"] is True
    api.error(make_job.raw(make_job.body(clone_url=(tmp_path / "no-such-repo").as_uri())), 404, "repo_not_found")
    during = scrape(anon_api)
    assert value(during, "dockyard_jobs_live") >= 1
    assert (
        value(during, "dockyard_job_creations_total", outcome="ok")
        == value(before, "dockyard_job_creations_total", outcome="ok") + 1
    )
    assert (
        value(during, "dockyard_job_creations_total", outcome="repo_not_found")
        == value(before, "dockyard_job_creations_total", outcome="repo_not_found") + 1
    )
    reads = "dockyard_tool_duration_seconds_count"
    assert value(during, reads, tool="read_file") == value(before, reads, tool="read_file") + 2
    assert value(during, "dockyard_exec_timeouts_total", kind="tool") == (
        value(before, "dockyard_exec_timeouts_total", kind="tool") + 1
    )
    assert api.delete(f"/v1/jobs/{job['id']}").status_code == 204
    after = scrape(anon_api)
    assert value(after, "dockyard_jobs_live") == value(during, "dockyard_jobs_live") - 1
    assert value(after, "dockyard_job_ends_total", how="deleted") == (
        value(during, "dockyard_job_ends_total", how="deleted") + 1
    )


def test_logs_are_json_with_request_and_job_ids(api, make_job, service):
    job = make_job(labels={"logged": "yes"})
    r = api.get(f"/v1/jobs/{job['id']}", headers={"X-Request-Id": "req-test-logs-2"})
    assert r.headers["X-Request-Id"] == "req-test-logs-2"
    assert service.stderr_path is not None
    lines = [
        json.loads(line) for line in service.stderr_path.read_text().splitlines() if line.startswith("{")
    ]
    ready = [x for x in lines if x.get("event") == "job_ready" and x.get("job_id") == job["id"]]
    assert len(ready) == 1
    assert ready[0]["request_id"] and ready[0]["level"] == "info" and ready[0]["timestamp"]
    assert ready[0]["actor"].startswith("bot-")
