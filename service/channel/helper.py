"""The persistent channel into a box: one long-lived helper, many concurrent calls.

A backend gives a `HelperStream` (bytes to the helper's stdin, bytes from its stdout); this module
speaks the frames of `wire` over it: request ids, one reader task resolving the callers' futures,
a per-call deadline the helper enforces in the box (it kills the call's process group) and the
service backs up (deadline + grace: cancel, then a ping; a helper that does not answer is killed).
A helper that died or was killed is replaced on the next call (`Channels.get`), so the job lives
on; after a service restart the first call opens a fresh one (the old helper ended with its
stdin). No thread is held: the stream is asyncio end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from service.channel.wire import REQUEST, RESPONSE, FrameError, encode, read_frame
from service.logging import get_logger
from service.sandbox.backend import HelperStream

log = get_logger(__name__)

GRACE_S = 2.0  # past the helper's own deadline before the service gives up on a call
HELLO_TIMEOUT_S = 15.0
PING_TIMEOUT_S = 2.0
PROTOCOL_VERSION = 1


class ChannelClosed(Exception):
    """The helper went away (died, killed, box gone) before it answered."""


@dataclass(frozen=True)
class Reply:
    """One answered call: the helper's result or refusal, its body, and what it cost."""

    ok: bool
    result: dict[str, Any]
    error: dict[str, Any] | None
    body: bytes
    duration_ms: int
    bytes_in: int
    bytes_out: int

    @property
    def code(self) -> str | None:
        return None if self.error is None else str(self.error.get("code", ""))

    @property
    def timed_out(self) -> bool:
        return self.code == "timed_out"


class HelperChannel:
    """One helper process in one box."""

    def __init__(self, stream: HelperStream, *, max_body: int):
        self._stream = stream
        self._max_body = max_body
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[tuple[dict[str, Any], bytes, int]]] = {}
        self._write_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._closed: str | None = None
        self.hello: dict[str, Any] = {}

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def start(self, timeout_s: float = HELLO_TIMEOUT_S) -> None:
        """Read the helper's hello (id 0), then answer calls from a reader task."""
        try:
            frame = await asyncio.wait_for(read_frame(self._stream.read_exactly, self._max_body), timeout_s)
        except (TimeoutError, EOFError, FrameError, OSError) as e:
            await self._stream.close()
            raise ChannelClosed(f"the sandbox helper did not start: {e!r}") from e
        result = frame.header.get("result") or {}
        if frame.kind != RESPONSE or frame.header.get("id") != 0 or result.get("version") != PROTOCOL_VERSION:
            await self._stream.close()
            raise ChannelClosed(f"the sandbox helper spoke another protocol: {frame.header!r}")
        self.hello = dict(result)
        self._reader = asyncio.create_task(self._read_loop(), name="helper-channel")

    async def _read_loop(self) -> None:
        reason = "the sandbox helper closed its output"
        try:
            while True:
                frame = await read_frame(self._stream.read_exactly, self._max_body)
                rid = frame.header.get("id")
                fut = self._pending.pop(rid, None) if isinstance(rid, int) else None
                if fut is not None and not fut.done():
                    fut.set_result((frame.header, frame.body, frame.wire_bytes))
                elif rid == 0:  # the helper's own word (a protocol error it saw): it exits next
                    log.warning("helper_said", header=frame.header)
        except EOFError:
            pass
        except (FrameError, OSError) as e:
            reason = f"the sandbox helper's output broke: {e}"
        except asyncio.CancelledError:
            reason = "the channel was closed"
            raise
        finally:
            self._fail_all(reason)

    def _fail_all(self, reason: str) -> None:
        self._closed = self._closed or reason
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ChannelClosed(reason))

    async def call(self, op: str, args: dict[str, Any], body: bytes = b"", *, timeout_s: float) -> Reply:
        """One request; answered or raised (ChannelClosed). Past the deadline the call is
        cancelled in the box and answered as timed out; a helper that then does not answer a ping
        is killed (the next call starts a new one)."""
        if self._closed is not None:
            raise ChannelClosed(self._closed)
        rid = next(self._ids)
        header = {"id": rid, "op": op, "args": args, "deadline_ms": max(1, int(timeout_s * 1000))}
        data = encode(REQUEST, header, body)
        fut: asyncio.Future[tuple[dict[str, Any], bytes, int]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        t0 = time.monotonic()
        try:
            await self._send(data)
            head, payload, out_bytes = await asyncio.wait_for(asyncio.shield(fut), timeout_s + GRACE_S)
        except TimeoutError:
            self._pending.pop(rid, None)
            await self._unstick(rid)
            head = {
                "id": rid,
                "ok": False,
                "error": {"code": "timed_out", "message": "deadline", "details": {}},
            }
            payload, out_bytes = b"", 0
        finally:
            self._pending.pop(rid, None)
        ms = int((time.monotonic() - t0) * 1000)
        ok = bool(head.get("ok"))
        error = head.get("error") if not ok else None
        return Reply(
            ok=ok,
            result=dict(head.get("result") or {}) if ok else {},
            error=dict(error)
            if isinstance(error, dict)
            else ({"code": "protocol_error"} if not ok else None),
            body=payload,
            duration_ms=ms,
            bytes_in=len(data),  # whole frames, as they crossed the channel
            bytes_out=out_bytes,
        )

    async def _send(self, data: bytes) -> None:
        async with self._write_lock:
            try:
                await self._stream.write(data)
            except (OSError, EOFError) as e:
                self._fail_all(f"the sandbox helper stopped reading: {e}")
                raise ChannelClosed(self._closed or "closed") from e

    async def _unstick(self, rid: int) -> None:
        """A call the helper did not answer in time: cancel it; kill a helper that is stuck."""
        with contextlib.suppress(ChannelClosed):
            await self.ping_or_kill(cancel=rid)

    async def ping_or_kill(self, cancel: int | None = None) -> bool:
        """True when the helper answers a ping in time; else it is killed and False."""
        if self._closed is not None:
            return False
        try:
            if cancel is not None:
                await self._quick("cancel", {"id": cancel})
            await self._quick("ping", {})
            return True
        except (TimeoutError, ChannelClosed):
            log.warning("helper_stuck", reason="no answer to a ping")
            await self.kill()
            return False

    async def _quick(self, op: str, args: dict[str, Any]) -> None:
        rid = next(self._ids)
        fut: asyncio.Future[tuple[dict[str, Any], bytes, int]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            await self._send(encode(REQUEST, {"id": rid, "op": op, "args": args, "deadline_ms": 1000}))
            await asyncio.wait_for(asyncio.shield(fut), PING_TIMEOUT_S)
        finally:
            self._pending.pop(rid, None)

    async def kill(self) -> None:
        """Stop the helper for good (its process in the box too) and fail what waits on it."""
        self._fail_all("the sandbox helper was stopped")
        with contextlib.suppress(Exception):
            await self._stream.kill()
        await self.close()

    async def close(self) -> None:
        self._fail_all(self._closed or "the channel was closed")
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        with contextlib.suppress(Exception):
            await self._stream.close()


Opener = Callable[[str], Awaitable[HelperStream]]


class Channels:
    """One channel per box, opened on first use and replaced when its helper is gone."""

    def __init__(self, open_stream: Opener, *, max_body: int):
        self._open = open_stream
        self._max_body = max_body
        self._channels: dict[str, HelperChannel] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.opened = 0  # helpers started (a restart counts): for metrics and tests

    async def get(self, box_id: str) -> HelperChannel:
        chan = self._channels.get(box_id)
        if chan is not None and not chan.closed:
            return chan
        lock = self._locks.setdefault(box_id, asyncio.Lock())
        async with lock:
            chan = self._channels.get(box_id)
            if chan is not None and not chan.closed:
                return chan
            if chan is not None:
                await chan.close()
            stream = await self._open(box_id)
            chan = HelperChannel(stream, max_body=self._max_body)
            await chan.start()
            self._channels[box_id] = chan
            self.opened += 1
            log.info(
                "helper_started",
                box_id=box_id[:12],
                pid=chan.hello.get("pid"),
                confinement=chan.hello.get("confinement"),
            )
            return chan

    def live(self) -> int:
        return sum(1 for c in self._channels.values() if not c.closed)

    async def drop(self, box_id: str) -> None:
        chan = self._channels.pop(box_id, None)
        self._locks.pop(box_id, None)
        if chan is not None:
            await chan.close()

    async def close(self) -> None:
        for box_id in list(self._channels):
            await self.drop(box_id)
