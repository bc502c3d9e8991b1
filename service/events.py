"""Live job events: persisted in the store, fanned out in memory to SSE subscribers.

`EVENTS` is the one declaration of the event types and the `data` each carries: the hub refuses
an event it does not declare (or whose data does not fit), and `/openapi.json` documents the
stream of `GET /v1/jobs/{id}/events` from it."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.models import TestCounts
from service.store import EventRecord, Store


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobCreating(_Data):
    """The job was accepted; its clone starts next."""

    status: Literal["creating"]


class JobCloning(_Data):
    """The service is fetching the repository."""

    repo: str | None = Field(description="the clone URL without credentials (null for a repo job)")
    ref: str | None = Field(description="the ref asked for (null: the default branch)")


class JobStarting(_Data):
    """The tree is checked out; the job's box is being started."""

    image: str
    base_sha: str


class JobReady(_Data):
    """The box runs: tools can be called."""

    status: Literal["ready"]
    base_sha: str


class JobFailed(_Data):
    """The job failed (at create, or its box vanished or was interrupted): the stream ends here."""

    status: Literal["failed"]
    error: str


class JobDestroyed(_Data):
    """The job was deleted or reaped after its TTL: the stream ends here."""

    status: Literal["destroyed"]
    reaped: bool = Field(False, description="removed by the TTL reaper, not by a DELETE")


class ToolExec(_Data):
    """One call into the box (a tool, the diff), with the outcome its audit record has."""

    action: str = Field(description="the audited action, e.g. tool.read_file")
    outcome: str = Field(description="ok, or the error code")
    duration_ms: int | None
    path: str | None = Field(None, description="the repository path the call named")


class LintEnded(_Data):
    """A lint run ended."""

    status: Literal["passed", "failed", "error"]
    linters: list[str]
    new: int = Field(description="new diagnostics in all")


class TestsEnded(_Data):
    """A test run ended."""

    __test__: ClassVar[bool] = False

    status: Literal["passed", "failed", "error"]
    rule: str
    counts: TestCounts
    new: int = Field(description="new failures (not flaky)")


class Committed(_Data):
    """The job's diff was committed to the git host."""

    sha: str
    branch: str


class ReplayTruncated(_Data):
    """Sent first on a (re)connection when older events after Last-Event-ID were left out."""

    after_seq: int
    first_seq: int
    replay_max: int


# Event type → the model of its `data`. `replay.truncated` is the stream's own notice (never stored,
# no seq); every other event is stored with a seq (its SSE id).
EVENTS: dict[str, type[_Data]] = {
    "job.creating": JobCreating,
    "job.cloning": JobCloning,
    "job.starting": JobStarting,
    "job.ready": JobReady,
    "job.failed": JobFailed,
    "job.destroyed": JobDestroyed,
    "exec": ToolExec,
    "lint": LintEnded,
    "test": TestsEnded,
    "commit": Committed,
    "replay.truncated": ReplayTruncated,
}
STREAM_NOTICES = frozenset({"replay.truncated"})


def check_event(type_: str, data: dict[str, Any]) -> None:
    """An event the catalogue does not declare, or whose data does not fit it, is a bug here."""
    model = EVENTS.get(type_)
    if model is None:
        raise ValueError(f"event type {type_!r} is not declared in service.events.EVENTS")
    model.model_validate(data)


class EventHub:
    def __init__(self, store: Store):
        self._store = store
        self._subscribers: dict[str, set[asyncio.Queue[EventRecord]]] = defaultdict(set)

    async def publish(self, job_id: str, type_: str, data: dict[str, Any] | None = None) -> EventRecord:
        check_event(type_, data or {})
        event = await self._store.add_event(job_id, type_, data or {})
        self.deliver(event)
        return event

    def deliver(self, event: EventRecord) -> None:
        """Hand a stored event to the live subscribers of its job."""
        check_event(event.type, event.data)
        for queue in list(self._subscribers.get(event.job_id, ())):
            if queue.qsize() < 1000:  # a stalled reader loses live events, never the service's memory
                queue.put_nowait(event)

    def subscribe(self, job_id: str) -> asyncio.Queue[EventRecord]:
        queue: asyncio.Queue[EventRecord] = asyncio.Queue()
        self._subscribers[job_id].add(queue)
        return queue

    def unsubscribe(self, job_id: str, queue: asyncio.Queue[EventRecord]) -> None:
        subs = self._subscribers.get(job_id)
        if subs is not None:
            subs.discard(queue)
            if not subs:
                del self._subscribers[job_id]
