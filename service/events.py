"""Live job events: persisted in the store, fanned out in memory to SSE subscribers."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from service.store import EventRecord, Store


class EventHub:
    def __init__(self, store: Store):
        self._store = store
        self._subscribers: dict[str, set[asyncio.Queue[EventRecord]]] = defaultdict(set)

    async def publish(self, job_id: str, type_: str, data: dict[str, Any] | None = None) -> EventRecord:
        event = await self._store.add_event(job_id, type_, data or {})
        self.deliver(event)
        return event

    def deliver(self, event: EventRecord) -> None:
        """Hand a stored event to the live subscribers of its job."""
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
