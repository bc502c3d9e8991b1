"""The SDK's client-side behaviour with a scripted transport (httpx.MockTransport): retries and
their Idempotency-Key, env defaults, the error tree, and the error codes kept in step with the
service's own declarations."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from dockyard_client import AsyncDockyard, Dockyard, Files, RetryPolicy, errors

from service import errors as service_errors

FAST = RetryPolicy(max_retries=3, base_delay_s=0.0, max_delay_s=0.01, busy_wait_s=0.05)
JOB = {
    "id": "job_1", "status": "ready", "repo": None, "clone_url": "file:///r", "ref": "main",
    "base_sha": "a" * 40, "language": "generic", "image": "i", "container_id": "c",
    "limits": {"memory_mb": 1, "cpus": 1.0, "pids": 1, "disk_mb": 1, "tool_timeout_s": 1,
               "lint_timeout_s": 1, "output_cap_kb": 1},
    "labels": {}, "created_at": "2026-01-01T00:00:00Z", "expires_at": "2026-01-01T01:00:00Z",
    "error": None, "commits": [], "a_field_from_a_newer_service": {"ignored": True},
}


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened", "details": {"k": 1}}}
    return httpx.Response(status, json=body, headers=headers)


def scripted(answers: list[httpx.Response | Exception]) -> tuple[list[httpx.Request], Callable[..., Any]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return seen, handler


def client(answers: list[httpx.Response | Exception], **kw: Any) -> tuple[list[httpx.Request], Dockyard]:
    seen, handler = scripted(answers)
    http = httpx.Client(transport=httpx.MockTransport(handler))
    return seen, Dockyard("http://dy.test", "tok", retry=FAST, http_client=http, **kw)


def test_job_creation_is_retried_with_one_idempotency_key() -> None:
    seen, dy = client([
        httpx.ReadTimeout("lost"), _error(429, "too_many_jobs", {"Retry-After": "0"}),
        _error(503, "docker_unavailable"), httpx.Response(201, json=JOB),
    ])
    job = dy.jobs.create(clone_url="file:///r")
    assert job.id == "job_1" and len(seen) == 4
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1 and len(keys.pop()) == 36  # one fresh uuid, reused by every retry
    seen2, dy3 = client([httpx.Response(201, json=JOB), httpx.Response(201, json=JOB)])
    dy3.jobs.create(clone_url="file:///r")
    dy3.jobs.create(clone_url="file:///r", idempotency_key="mine")
    assert seen2[0].headers["Idempotency-Key"] != "mine" and seen2[1].headers["Idempotency-Key"] == "mine"


def test_an_edit_is_not_repeated_but_an_unsent_call_is() -> None:
    seen, dy = client([_error(503, "docker_unavailable")])
    with pytest.raises(errors.DockerUnavailable) as e:
        Files(dy, "job_1").replace("a.py", "x", "y")
    assert len(seen) == 1 and e.value.status == 503 and isinstance(e.value, errors.ServiceUnavailable)
    ok = {"path": "a.py", "replacements": 1, "snippet": "1\ty"}
    seen, dy = client([httpx.ConnectError("refused"), httpx.Response(200, json=ok)])
    assert Files(dy, "job_1").replace("a.py", "x", "y").replacements == 1 and len(seen) == 2


def test_retries_are_bounded_and_end_in_typed_errors() -> None:
    seen, dy = client([httpx.ConnectError("refused")] * 4)
    with pytest.raises(errors.ConnectionError) as e:
        dy.health()
    assert len(seen) == 4 and isinstance(e.value, ConnectionError) and "dy.test" in str(e.value)
    seen, dy = client([httpx.ReadTimeout("slow")] * 4)
    with pytest.raises(errors.TimeoutError) as t:
        dy.health()
    assert isinstance(t.value, errors.ConnectionError) and isinstance(t.value, TimeoutError)
    seen, dy = client([_error(429, "too_many_jobs", {"Retry-After": "0.02"})] * 5)
    dy.retry = RetryPolicy(max_retries=3, base_delay_s=0.0, max_delay_s=1.0, busy_wait_s=0.05)
    with pytest.raises(errors.TooManyJobs) as busy:
        dy.jobs.create(repo="o/r")
    assert busy.value.retry_after_s == 0.02 and len(seen) == 3  # busy_wait_s 0.05 spent


def test_the_error_tree() -> None:
    e = errors.from_response(404, json.dumps({"error": {"code": "job_not_found", "message": "no",
                                                       "details": {"id": "x"}}}).encode(), {})
    assert type(e) is errors.JobNotFound and isinstance(e, errors.NotFound)
    assert (e.status, e.code, e.message, e.details) == (404, "job_not_found", "no", {"id": "x"})
    novel = errors.from_response(409, b'{"error": {"code": "brand_new", "message": "m", "details": {}}}', {})
    assert type(novel) is errors.Conflict and novel.code == "brand_new"
    assert type(errors.from_response(502, b"<html>bad gateway</html>", {})) is errors.UpstreamError
    assert type(errors.from_response(599, b"", {})) is errors.ServerError
    assert type(errors.from_response(418, b"", {})) is errors.APIError
    # a code answered under another status than its own falls back to that status's family
    assert type(errors.from_response(400, b'{"error": {"code": "job_not_found", "message": "m"}}', {})) \
        is errors.InvalidRequest


def test_every_service_error_code_has_its_sdk_class() -> None:
    def subclasses(cls: type) -> list[type]:
        return [s for sub in cls.__subclasses__() for s in (sub, *subclasses(sub))]

    missing = []
    for cls in subclasses(service_errors.DockyardError):
        sdk = errors.error_class(cls.status, cls.code)
        if sdk.CODE != cls.code or sdk.STATUS != cls.status:
            missing.append(f"{cls.__name__}: {cls.status} {cls.code} -> SDK {sdk.__name__}")
    assert not missing, "service error codes the SDK has no class for:\n" + "\n".join(missing)


def test_env_defaults_and_explicit_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DOCKYARD_API_URL", raising=False)
    monkeypatch.delenv("DOCKYARD_API_TOKEN", raising=False)
    assert Dockyard().base_url == "http://127.0.0.1:8080"
    monkeypatch.setenv("DOCKYARD_API_URL", "http://env.test:9/")
    monkeypatch.setenv("DOCKYARD_API_TOKEN", "env-token")
    seen, handler = scripted([httpx.Response(200, json={"status": "ok"})] * 2)
    transport = httpx.MockTransport(handler)
    with Dockyard(http_client=httpx.Client(transport=transport)) as dy:
        dy.health()
    with Dockyard("http://arg.test", "arg-token", http_client=httpx.Client(transport=transport)) as dy:
        dy.health()
    assert str(seen[0].url) == "http://env.test:9/healthz"
    assert seen[0].headers["Authorization"] == "Bearer env-token"
    assert str(seen[1].url) == "http://arg.test/healthz"
    assert seen[1].headers["Authorization"] == "Bearer arg-token"


async def test_async_client_retries_and_tolerates_new_fields() -> None:
    seen, handler = scripted([_error(503, "docker_unavailable"), httpx.Response(200, json=JOB)])
    async with AsyncDockyard("http://dy.test", "t", retry=FAST,
                             http_client=httpx.AsyncClient(transport=httpx.MockTransport(handler))) as dy:
        job = await dy.jobs.get("job_1")
    assert job.id == "job_1" and len(seen) == 2
    assert not hasattr(job.info, "a_field_from_a_newer_service")


def test_job_create_needs_one_source() -> None:
    _, dy = client([])
    with pytest.raises(ValueError, match="exactly one"):
        dy.jobs.create()
    with pytest.raises(ValueError, match="exactly one"):
        dy.jobs.create(repo="o/r", clone_url="file:///r")
