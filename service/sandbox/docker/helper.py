"""The Docker half of the persistent channel: one `docker exec -i dockyard-tool serve` per box.

The exec is created and started with docker-py (two short engine calls, in a thread), then its
hijacked socket is handed to asyncio: writes go to the helper's stdin as they are, reads undo the
engine's 8-byte stream multiplexing (stdout is the protocol, stderr is logged). Nothing holds a
thread while the channel lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from service.logging import get_logger
from service.sandbox.docker.execs import _start_exec

log = get_logger(__name__)

SERVE_ARGV = ["dockyard-tool", "serve"]
STDERR_KEEP = 8192  # bytes of the helper's stderr kept for the log line
MAX_ENGINE_FRAME = 1 << 20  # the engine copies in 32 KiB chunks; anything larger is not the engine


class DockerHelperStream:
    """A HelperStream over an exec's hijacked socket (no TTY: multiplexed frames)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        early: bytes,
        *,
        release: Callable[[], None],
        kill: Callable[[], Awaitable[None]],
        box_id: str,
    ):
        self._reader = reader
        self._writer = writer
        self._early = bytearray(early)
        self._buf = bytearray()
        self._release = release
        self._kill = kill
        self._box = box_id[:12]
        self._stderr = bytearray()

    async def _raw(self, n: int) -> bytes:
        take = bytes(self._early[:n])
        del self._early[:n]
        if len(take) == n:
            return take
        try:
            return take + await self._reader.readexactly(n - len(take))
        except asyncio.IncompleteReadError as e:
            raise EOFError("the helper's stream ended") from e

    async def read_exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            kind, size = struct.unpack(">BxxxL", await self._raw(8))
            if size > MAX_ENGINE_FRAME:
                raise OSError(f"an engine stream frame of {size} bytes")
            payload = await self._raw(size)
            if kind == 2:
                self._note_stderr(payload)
            else:
                self._buf += payload
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _note_stderr(self, data: bytes) -> None:
        self._stderr += data
        while b"\n" in self._stderr:
            line, _, rest = bytes(self._stderr).partition(b"\n")
            self._stderr = bytearray(rest)
            log.info("helper_stderr", box_id=self._box, line=line[:STDERR_KEEP].decode("utf-8", "replace"))
        del self._stderr[:-STDERR_KEEP]

    async def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise EOFError("the helper's stream is closed")
        self._writer.write(data)
        await self._writer.drain()

    async def kill(self) -> None:
        await self._kill()

    async def close(self) -> None:
        if not self._writer.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                if self._writer.can_write_eof():
                    self._writer.write_eof()
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._release()


def start_helper_blocking(api: Any, container_id: str) -> tuple[Any, Any, bytes, str]:
    """Create and start the helper's exec: (HTTP response, raw socket, early bytes, marker).
    Blocking (engine calls): run it in a thread. The marker lets `dockyard-tool kill` find it."""
    marker = secrets.token_hex(8)
    exec_id = api.exec_create(
        container_id,
        SERVE_ARGV,
        stdout=True,
        stderr=True,
        stdin=True,
        environment={"DOCKYARD_EXEC": marker},
    )["Id"]
    response, sock, early = _start_exec(api, exec_id)
    return response, sock, early, marker


async def open_stream(
    sock: Any,
    early: bytes,
    *,
    release: Callable[[], None],
    kill: Callable[[], Awaitable[None]],
    box_id: str,
) -> DockerHelperStream:
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    return DockerHelperStream(reader, writer, early, release=release, kill=kill, box_id=box_id)
