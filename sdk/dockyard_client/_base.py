"""What the sync and the async client share: settings from the environment, the retry policy,
error and answer decoding, event decoding and request bodies. No I/O happens here."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from httpx_sse import ServerSentEvent
from pydantic import BaseModel, TypeAdapter, ValidationError

from dockyard_client import errors
from dockyard_client._endpoints import Endpoint
from dockyard_client.models import AgentTool, JobEvent, ReplayTruncated

M = TypeVar("M", bound=BaseModel)

ENV_URL = "DOCKYARD_API_URL"
ENV_TOKEN = "DOCKYARD_API_TOKEN"
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 300.0
CONNECT_TIMEOUT_S = 10.0
_AGENT_TOOLS = TypeAdapter(list[AgentTool])
Event = JobEvent | ReplayTruncated


def resolve_url(base_url: str | None) -> str:
    """Explicit argument, else DOCKYARD_API_URL, else the local default."""
    return (base_url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")


def resolve_token(token: str | None) -> str | None:
    return token if token is not None else (os.environ.get(ENV_TOKEN) or None)


def make_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    return httpx.Timeout(DEFAULT_TIMEOUT_S if timeout is None else timeout, connect=CONNECT_TIMEOUT_S)


def headers(token: str | None, user_agent: str) -> dict[str, str]:
    out = {"User-Agent": user_agent, "Accept": "application/json"}
    if token:
        out["Authorization"] = f"Bearer {token}"
    return out


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are worth repeating, and after how long.

    - a connection that could not be made (nothing was sent): any call;
    - a lost answer, `429` and `503` (and a `502` that is not the git host's own 4xx verdict): calls
      that are harmless to repeat — reads, writes of the same bytes, and calls that carry an
      Idempotency-Key (job creation and commit), whose key is the same on every attempt;
    - a `429`'s or `503`'s `Retry-After` is honoured (capped at `max_delay_s`); `429` waits may add
      up to `busy_wait_s` in all (the job cap frees up as other jobs end), the rest is counted by
      `max_retries`.
    """

    max_retries: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 60.0
    busy_wait_s: float = 120.0

    def backoff(self, attempt: int) -> float:
        return float(min(self.max_delay_s, self.base_delay_s * 2**attempt * (0.75 + random.random() / 2)))

    def on_transport(self, exc: httpx.TransportError, attempt: int, idempotent: bool) -> float | None:
        unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
        if attempt < self.max_retries and (unsent or idempotent):
            return self.backoff(attempt)
        return None

    def on_error(self, err: errors.APIError, attempt: int, waited: float, idempotent: bool) -> float | None:
        if not idempotent:
            return None
        if isinstance(err, errors.RateLimited):
            delay = min(err.retry_after_s if err.retry_after_s is not None else self.backoff(attempt),
                        self.max_delay_s)
            return delay if waited + delay <= self.busy_wait_s else None
        if attempt >= self.max_retries:
            return None
        if isinstance(err, errors.ServiceUnavailable):
            after = errors.retry_after(err.headers)
            return min(after, self.max_delay_s) if after is not None else self.backoff(attempt)
        if isinstance(err, errors.UpstreamError):
            gh = err.details.get("github_status")
            if isinstance(gh, int) and 400 <= gh < 500 and gh != 429:
                return None  # GitHub's own verdict: the same request would get it again
            return self.backoff(attempt)
        return None


def idempotency_key(given: str | None) -> str:
    return given or str(uuid.uuid4())


def transport_error(exc: httpx.TransportError, method: str, url: str) -> errors.ConnectionError:
    what = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        return errors.TimeoutError(f"{method} {url}: no answer in time: {what}")
    return errors.ConnectionError(f"{method} {url}: cannot reach dockyard: {what}")


def parse(model: type[M], ep: Endpoint, content: bytes) -> M:
    try:
        return model.model_validate_json(content)
    except ValidationError as e:
        raise errors.ResponseValidationError(f"{ep.method} {ep.path}: unexpected answer: {e}") from e


def agent_tools(document: Any, base_url: str) -> list[AgentTool]:
    raw = document.get("x-agent-tools") if isinstance(document, dict) else None
    if raw is None:
        raise errors.ResponseValidationError(
            f"the dockyard service at {base_url} does not describe its agent tools "
            "(`x-agent-tools` missing from /openapi.json): it is older than this client"
        )
    try:
        return _AGENT_TOOLS.validate_python(raw)
    except ValidationError as e:
        raise errors.ResponseValidationError(f"GET /openapi.json: unexpected x-agent-tools: {e}") from e


def decode_event(sse: ServerSentEvent) -> Event:
    try:
        if sse.event == "replay.truncated":
            return ReplayTruncated.model_validate_json(sse.data)
        return JobEvent.model_validate_json(sse.data)
    except ValidationError as e:
        raise errors.ResponseValidationError(f"job event {sse.event!r}: unexpected shape: {e}") from e


def query(**values: Any) -> httpx.QueryParams:
    """Query parameters; None is left out, a list repeats its key, a bool is true/false."""
    out: list[tuple[str, str | int | float | bool | None]] = []
    for key, value in values.items():
        items = value if isinstance(value, list | tuple) else [value]
        for v in items:
            if v is None:
                continue
            out.append((key, json.dumps(v) if isinstance(v, bool) else str(v)))
    return httpx.QueryParams(out)


def labels_query(labels: Mapping[str, str] | Sequence[str] | None) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, Mapping):
        return [f"{k}:{v}" for k, v in labels.items()]
    return list(labels)


def body(**values: Any) -> dict[str, Any]:
    """A request body with the arguments the caller left at None left out (the service's defaults)."""
    return {k: v for k, v in values.items() if v is not None}


def job_create_body(
    *,
    repo: str | None,
    ref: str | None,
    clone_url: str | None,
    language: str | None,
    limits: Mapping[str, int | float] | None,
    ttl_s: int | None,
    labels: Mapping[str, str] | None,
) -> dict[str, Any]:
    if (repo is None) == (clone_url is None):
        raise ValueError("give exactly one of repo= (owner/name) and clone_url=")
    return body(
        repo=repo,
        ref=ref,
        clone_url=clone_url,
        language=language,
        limits=dict(limits) if limits else None,
        ttl_s=ttl_s,
        labels=dict(labels) if labels else None,
    )


def edit_body(tool_input: Mapping[str, Any] | None, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Anthropic's text editor tool input, verbatim: a tool_use's `input` as it came, or keyword
    fields (command, path, view_range, file_text, old_str, new_str, insert_line, insert_text)."""
    data = dict(tool_input or {})
    data.update({k: v for k, v in fields.items() if v is not None})
    if "command" not in data:
        raise ValueError("the editor tool needs a command (view, create, str_replace, insert)")
    return data


def long_timeout(timeout: httpx.Timeout, extra_s: float) -> httpx.Timeout:
    """A timeout for a call that may legitimately take `extra_s` longer than usual."""
    read = timeout.read if timeout.read is not None else DEFAULT_TIMEOUT_S
    return httpx.Timeout(read + extra_s, connect=timeout.connect)
