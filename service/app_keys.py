"""Typed keys for what the application holds (aiohttp AppKey, no globals)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from service.github.git_host import GitHost
    from service.idempotency import Idempotency
    from service.jobs import JobService
    from service.lint.runner import LintService
    from service.sandbox.backend import SandboxBackend
    from service.settings import Settings
    from service.tests_run.runner import TestService
    from service.trail import OutcomeTrail

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
JOBS: web.AppKey[JobService] = web.AppKey("jobs")
BACKEND: web.AppKey[SandboxBackend] = web.AppKey("backend")
LINT: web.AppKey[LintService] = web.AppKey("lint")
TESTS: web.AppKey[TestService] = web.AppKey("tests")
GITHOST: web.AppKey[GitHost] = web.AppKey("githost")
TRAIL: web.AppKey[OutcomeTrail] = web.AppKey("trail")
IDEMPOTENCY: web.AppKey[Idempotency] = web.AppKey("idempotency")
# Open streaming responses (SSE) that never end by themselves: ended at shutdown so SIGTERM is
# prompt; each is a callable that stops its stream (EventSourceResponse.stop_streaming).
STREAMS: web.AppKey[set[Callable[[], None]]] = web.AppKey("streams")
