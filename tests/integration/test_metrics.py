"""Observability: Prometheus metrics at /metrics (public, like /healthz) that move with what
happens, and structured JSON logs carrying the request id and the job id."""

from __future__ import annotations

import json
import re
from typing import Any

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


def families(anon_api) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(anon_api.get("/metrics").text)}


def test_http_requests_are_counted_by_route_template_method_and_status(api, anon_api, job):
    name = "dockyard_http_requests_total"
    route = "/v1/jobs/{id}/tools/read_file"
    before = scrape(anon_api)
    api.read(job["id"], "README.md")
    api.read(job["id"], "README.md")
    api.error(api.tool(job["id"], "read_file", path="no/such/file"), 404, "file_not_found")
    api.error(api.get("/v1/no/such/route"), 404)
    api.error(api.get(f"/v1/jobs/{job['id']}", headers={"Authorization": "Bearer nope-nope-nope-nope"}), 401)
    after = scrape(anon_api)

    def moved(**labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved(method="POST", route=route, status="200") == 2
    assert moved(method="POST", route=route, status="404") == 1
    assert moved(method="other", route="unmatched", status="404") == 1
    assert moved(method="GET", route="/v1/jobs/{id}", status="401") == 1
    seconds = "dockyard_http_request_duration_seconds_count"
    assert value(after, seconds, method="POST", route=route, status="200") - value(
        before, seconds, method="POST", route=route, status="200"
    ) == 2
    routes = {dict(labels)["route"] for (sample, labels) in after if sample == name}
    assert job["id"] not in str(routes) and "/v1/no/such/route" not in routes


def test_build_info_and_every_metric_is_prefixed(anon_api):
    from service import __version__

    fams = families(anon_api)
    (info,) = fams["dockyard_build_info"].samples
    assert info.name == "dockyard_build_info" and info.value == 1
    assert info.labels["version"] == __version__ and re.match(r"^3\.\d+\.\d+", info.labels["python"])
    # the client library's standard process_/python_ collectors keep their well-known names
    ours = [n for n in fams if not n.startswith(("process_", "python_"))]
    assert ours and all(n.startswith("dockyard_") for n in ours), [n for n in ours if not n.startswith("dockyard_")]
    assert "dockyard_github_calls" in fams and "github_calls" not in fams
