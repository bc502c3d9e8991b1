"""The delivery loop: one task per sink, woken by the store's commit hook, sending in seq order
from its persisted cursor (so a restart resumes where delivery stopped: nothing lost, nothing
sent twice after a clean stop), retrying with bounded exponential backoff (tenacity)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from service import metrics
from service.audit import AuditRecord
from service.logging import get_logger
from service.settings import Settings
from service.siem.base import Sink, SinkError
from service.store import Store

log = get_logger(__name__)


def _epoch(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()


class Delivery:
    """One sink's cursor, lag and loop."""

    def __init__(self, store: Store, sink: Sink, settings: Settings):
        self.store = store
        self.sink = sink
        self.kind = sink.name.split(":", 1)[0]
        self.batch = settings.siem_batch
        self.interval_s = settings.siem_interval_s
        self.retry_max_s = settings.siem_retry_max_s
        self.delivered = 0  # the cursor: last seq the sink has
        self.head = 0  # newest seq committed (as far as we know)
        self.oldest_at: float | None = None  # commit time of the oldest undelivered record
        self.last_error: str | None = None
        self.stopping = False
        self._wake = asyncio.Event()
        metrics.SIEM_LAG_RECORDS.labels(self.kind).set_function(lambda: float(self.behind))
        metrics.SIEM_LAG_SECONDS.labels(self.kind).set_function(self.seconds_behind)

    @property
    def behind(self) -> int:
        return max(0, self.head - self.delivered)

    def seconds_behind(self) -> float:
        if not self.behind or self.oldest_at is None:
            return 0.0
        return max(0.0, time.time() - self.oldest_at)

    def notify(self, record: AuditRecord) -> None:
        """The commit hook: a new record exists (called after its COMMIT)."""
        self.head = max(self.head, record.seq)
        if self.oldest_at is None and record.seq > self.delivered:
            self.oldest_at = _epoch(record.at)
        self._wake.set()

    def stop(self) -> None:
        self.stopping = True
        self._wake.set()

    def status(self) -> dict[str, Any]:
        state = "retrying" if self.last_error else ("caught up" if not self.behind else "sending")
        out: dict[str, Any] = {"state": state, "delivered_seq": self.delivered, "behind": self.behind}
        if self.last_error:
            out["error"] = self.last_error
        return out

    async def run(self) -> None:
        while True:
            try:
                await self._run()
                return
            except Exception as e:  # a store error: keep the sink alive, start over from the cursor
                self.last_error = f"{type(e).__name__}: {e}"
                log.exception("siem_delivery_crashed", sink=self.kind)
                await asyncio.sleep(self.retry_max_s)

    async def _run(self) -> None:
        self.delivered = await self.store.siem_cursor(self.sink.name)
        self.head = max(self.head, self.delivered, await self.store.audit_head())
        log.info("siem_sink_started", sink=self.kind, cursor=self.delivered, behind=self.behind)
        while True:
            self._wake.clear()
            batch = await self.store.audit_query(after=self.delivered, limit=self.batch)
            if batch:
                self.head = max(self.head, batch[-1].seq)
                if self.oldest_at is None:
                    self.oldest_at = _epoch(batch[0].at)
                await self._send(batch)
                self.delivered = batch[-1].seq
                await self.store.set_siem_cursor(self.sink.name, self.delivered)
                metrics.SIEM_DELIVERED.labels(self.kind).inc(len(batch))
                self.oldest_at = None  # the next read (at once, if any is left) sets it again
                continue
            self.oldest_at = None
            if self.stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)

    async def _send(self, batch: list[AuditRecord]) -> None:
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(SinkError),
            wait=wait_exponential_jitter(
                multiplier=0.2, max=self.retry_max_s, jitter=min(1.0, self.retry_max_s)
            ),
            before_sleep=self._failed,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                await self.sink.send(batch)
        if self.last_error is not None:
            log.info("siem_sink_recovered", sink=self.kind, seq=batch[-1].seq)
            self.last_error = None

    def _failed(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        self.last_error = str(error)
        metrics.SIEM_FAILURES.labels(self.kind).inc()
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "siem_delivery_failed",
            sink=self.kind,
            error=self.last_error,
            attempt=state.attempt_number,
            retry_in_s=round(wait, 2),
            behind=self.behind,
        )


class SiemService:
    """Every configured sink's delivery, started after the store opens, stopped before it closes."""

    def __init__(self, store: Store, sinks: list[Sink], settings: Settings):
        self.store = store
        self.deliveries = [Delivery(store, s, settings) for s in sinks]
        self.stop_timeout_s = settings.siem_stop_timeout_s
        self._tasks: list[asyncio.Task[None]] = []

    def _on_audit(self, record: AuditRecord) -> None:
        for d in self.deliveries:
            d.notify(record)

    async def start(self) -> None:
        self.store.on_audit.append(self._on_audit)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(d.run(), name=f"dockyard-siem-{d.kind}") for d in self.deliveries]

    def status(self) -> dict[str, Any]:
        return {d.kind: d.status() for d in self.deliveries}

    async def stop(self) -> None:
        """Let each sink catch up for a moment (what is left is sent after the next start), then end."""
        for d in self.deliveries:
            d.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=self.stop_timeout_s)
            for task in pending:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task  # a failure other than cancellation surfaces here
        with contextlib.suppress(ValueError):
            self.store.on_audit.remove(self._on_audit)
        for d in self.deliveries:
            if d.behind:
                log.warning("siem_sink_behind_at_stop", sink=d.kind, behind=d.behind, cursor=d.delivered)
            await d.sink.close()
