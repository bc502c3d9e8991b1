"""The frames between the service and the in-box helper (`dockyard-tool serve`), version 1.

    "DY" | version u8 | kind u8 | header length u32 BE | body length u32 BE | header | body

The header is one UTF-8 JSON object; the body is raw bytes (file content), so binary content never
goes through JSON. Requests carry `{"id", "op", "args", "deadline_ms"}`; responses `{"id", "ok",
"result" | "error", "duration_ms"}`, in completion order (calls are concurrent). The helper's side is
`sandbox-images/base/helper/proto.go`; a test runs both against each other.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

MAGIC = b"DY"
VERSION = 1
REQUEST = 1
RESPONSE = 2
PREFIX = struct.Struct(">2sBBII")
MAX_HEADER = 1 << 20
MAX_BODY = 64 << 20


class FrameError(Exception):
    """The peer sent something that is not a frame of this protocol (the channel is dropped)."""


@dataclass(frozen=True)
class Frame:
    kind: int
    header: dict[str, Any]
    body: bytes
    wire_bytes: int = 0  # the whole frame as it crossed the channel (prefix + header + body)


def encode(kind: int, header: dict[str, Any], body: bytes = b"") -> bytes:
    # ASCII JSON: any text the service holds encodes (the edge refuses lone surrogates in what it
    # sends as text; this keeps a frame well-formed whatever reaches it)
    head = json.dumps(header, separators=(",", ":")).encode("ascii")
    if len(head) > MAX_HEADER or len(body) > MAX_BODY:
        raise FrameError(f"frame over the protocol's size limits ({len(head)} + {len(body)} bytes)")
    return PREFIX.pack(MAGIC, VERSION, kind, len(head), len(body)) + head + body


async def read_frame(read_exactly: Callable[[int], Awaitable[bytes]], max_body: int = MAX_BODY) -> Frame:
    """One frame; `read_exactly` raises EOFError at the end of the stream. A body over
    `max_body` is refused before it is read, so a peer can never make us buffer more."""
    magic, version, kind, head_len, body_len = PREFIX.unpack(await read_exactly(PREFIX.size))
    if magic != MAGIC or version != VERSION or kind not in (REQUEST, RESPONSE):
        raise FrameError(f"not a dockyard frame (magic {magic!r}, version {version}, kind {kind})")
    if not 0 < head_len <= MAX_HEADER or body_len > min(max_body, MAX_BODY):
        raise FrameError(f"frame over the size limits ({head_len} + {body_len} bytes)")
    try:
        header = json.loads(await read_exactly(head_len))
    except ValueError as e:
        raise FrameError(f"unreadable frame header: {e}") from e
    if not isinstance(header, dict):
        raise FrameError("a frame header must be a JSON object")
    body = await read_exactly(body_len) if body_len else b""
    return Frame(kind, header, body, PREFIX.size + head_len + body_len)
