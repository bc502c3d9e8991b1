"""An in-memory helper for unit tests: a HelperStream whose far end speaks the real frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from service.channel.wire import PREFIX, RESPONSE, encode


class FakeHelper:
    """A HelperStream whose far end is a tiny helper: ops echo, sleep, hang, die, ping, cancel."""

    def __init__(self, *, stuck: bool = False, hello: dict[str, Any] | None = None):
        self.out = bytearray(encode(RESPONSE, {"id": 0, "ok": True, "result": hello or {"version": 1}}))
        self.more = asyncio.Event()
        self.more.set()
        self.inbuf = bytearray()
        self.closed = False
        self.killed = False
        self.stuck = stuck  # answers nothing at all (not even ping): must be killed
        self.tasks: set[asyncio.Task[None]] = set()
        self.seen: list[str] = []

    async def read_exactly(self, n: int) -> bytes:
        while len(self.out) < n:
            if self.closed:
                raise EOFError
            self.more.clear()
            await self.more.wait()
        data = bytes(self.out[:n])
        del self.out[:n]
        return data

    def _emit(self, header: dict[str, Any], body: bytes = b"") -> None:
        if not self.closed:
            self.out += encode(RESPONSE, header, body)
            self.more.set()

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise EOFError
        self.inbuf += data
        while len(self.inbuf) >= PREFIX.size:
            _, _, _, h, b = PREFIX.unpack(self.inbuf[: PREFIX.size])
            if len(self.inbuf) < PREFIX.size + h + b:
                break
            head = json.loads(self.inbuf[PREFIX.size : PREFIX.size + h])
            body = bytes(self.inbuf[PREFIX.size + h : PREFIX.size + h + b])
            del self.inbuf[: PREFIX.size + h + b]
            task = asyncio.create_task(self._handle(head, body))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _handle(self, head: dict[str, Any], body: bytes) -> None:
        op, rid = head["op"], head["id"]
        self.seen.append(op)
        if self.stuck:
            return
        if op == "die":
            await self.close()
            return
        if op == "hang":
            await asyncio.sleep(3600)
        if op == "sleep":
            await asyncio.sleep(head["args"]["s"])
        self._emit({"id": rid, "ok": True, "result": {"op": op}}, body if op == "echo" else b"")

    async def kill(self) -> None:
        self.killed = True
        await self.close()

    async def close(self) -> None:
        self.closed = True
        self.more.set()


class FilesHelper(FakeHelper):
    """The fake helper over a dict of files: read_file and write_file as the real helper answers
    them (enough for the job service's own tests); other ops answer `unknown_op`."""

    def __init__(self, files: dict[str, bytes]):
        super().__init__()
        self.files = files

    async def _handle(self, head: dict[str, Any], body: bytes) -> None:
        import hashlib

        op, rid, args = head["op"], head["id"], head.get("args", {})
        self.seen.append(op)
        if op == "ping":
            self._emit({"id": rid, "ok": True, "result": {}})
        elif op == "read_file" and args["path"] in self.files:
            data = self.files[args["path"]]
            lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
            result = {
                "total_lines": lines,
                "size_bytes": len(data),
                "start_line": 1 if lines else 0,
                "end_line": lines,
                "truncated": False,
                "content_sha256": hashlib.sha256(data).hexdigest(),
            }
            self._emit({"id": rid, "ok": True, "result": result}, data)
        elif op == "read_file":
            error = {
                "code": "file_not_found",
                "message": f"no such file: {args['path']}",
                "details": {"path": args["path"]},
            }
            self._emit({"id": rid, "ok": False, "error": error})
        elif op == "write_file":
            before = self.files.get(args["path"])
            self.files[args["path"]] = body
            result = {
                "bytes_written": len(body),
                "created": before is None,
                "mode": "100644",
                "ignored": False,
                "content_sha256": hashlib.sha256(body).hexdigest(),
                "before_sha256": None if before is None else hashlib.sha256(before).hexdigest(),
            }
            self._emit({"id": rid, "ok": True, "result": result})
        else:
            self._emit(
                {"id": rid, "ok": False, "error": {"code": "unknown_op", "message": op, "details": {}}}
            )
