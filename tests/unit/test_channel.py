"""The persistent channel against a helper double that speaks the real frames in memory:
concurrency, binary bodies, a hung call, a stuck helper killed, a dead one replaced."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import pytest

from service.channel import helper as chan_mod
from service.channel.helper import ChannelClosed, Channels, HelperChannel
from service.channel.wire import MAX_HEADER, REQUEST, FrameError, encode, read_frame
from tests.fakes.helper import FakeHelper


async def opened(helper: FakeHelper) -> HelperChannel:
    ch = HelperChannel(helper, max_body=1 << 24)
    await ch.start(timeout_s=1)
    return ch


async def test_concurrent_calls_answer_in_completion_order_with_binary_bodies() -> None:
    ch = await opened(FakeHelper())
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    slow = asyncio.create_task(ch.call("sleep", {"s": 0.3}, timeout_s=5))
    echoes = await asyncio.gather(*(ch.call("echo", {}, data + bytes([i]), timeout_s=5) for i in range(50)))
    assert not slow.done()  # the slow call did not hold the others back
    assert [r.body[-1] for r in echoes] == list(range(50)) and all(r.body[:-1] == data for r in echoes)
    assert (await slow).ok
    await ch.close()


async def test_a_hung_call_times_out_while_others_complete_and_the_helper_lives_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chan_mod, "GRACE_S", 0.05)
    helper = FakeHelper()
    ch = await opened(helper)
    hung = asyncio.create_task(ch.call("hang", {}, timeout_s=0.2))
    fine = await ch.call("echo", {}, b"x", timeout_s=5)
    reply = await hung
    assert fine.body == b"x" and reply.timed_out and not reply.ok
    assert "cancel" in helper.seen and "ping" in helper.seen and not helper.killed
    assert (await ch.call("echo", {}, b"y", timeout_s=5)).body == b"y"


async def test_a_stuck_helper_is_killed_and_the_next_call_gets_a_new_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chan_mod, "GRACE_S", 0.05)
    monkeypatch.setattr(chan_mod, "PING_TIMEOUT_S", 0.1)
    helpers = [FakeHelper(stuck=True), FakeHelper()]

    async def open_stream(box_id: str) -> FakeHelper:
        return helpers.pop(0)

    channels = Channels(open_stream, max_body=1 << 20)
    first = await channels.get("box")
    assert (await first.call("echo", {}, timeout_s=0.1)).timed_out
    assert first.closed
    second = await channels.get("box")
    assert second is not first and (await second.call("echo", {}, b"ok", timeout_s=5)).body == b"ok"
    assert channels.opened == 2


async def test_a_helper_that_dies_fails_what_waits_and_is_replaced() -> None:
    helpers = [FakeHelper(), FakeHelper()]

    async def open_stream(box_id: str) -> FakeHelper:
        return helpers.pop(0)

    channels = Channels(open_stream, max_body=1 << 20)
    ch = await channels.get("box")
    waiting = asyncio.create_task(ch.call("hang", {}, timeout_s=30))
    await asyncio.sleep(0.01)
    with pytest.raises(ChannelClosed):
        await ch.call("die", {}, timeout_s=30)
    with pytest.raises(ChannelClosed):
        await waiting
    assert (await (await channels.get("box")).call("echo", {}, b"z", timeout_s=5)).body == b"z"


async def test_a_helper_speaking_another_protocol_is_refused() -> None:
    with pytest.raises(ChannelClosed, match="another protocol"):
        await opened(FakeHelper(hello={"version": 99}))


async def test_frames_refuse_oversize_and_garbage_before_reading_them() -> None:
    async def reader_of(data: bytes) -> Any:
        buf = bytearray(data)

        async def read_exactly(n: int) -> bytes:
            if len(buf) < n:
                raise EOFError
            out = bytes(buf[:n])
            del buf[:n]
            return out

        return await read_frame(read_exactly, max_body=10)

    frame = await reader_of(encode(REQUEST, {"id": 1}, b"0123456789"))
    assert frame.header == {"id": 1} and frame.body == b"0123456789"
    with pytest.raises(FrameError, match="size"):
        await reader_of(encode(REQUEST, {"id": 1}, b"x" * 11))
    with pytest.raises(FrameError, match="not a dockyard frame"):
        await reader_of(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(FrameError, match="size"):
        await reader_of(struct.pack(">2sBBII", b"DY", 1, 1, MAX_HEADER + 1, 0))
