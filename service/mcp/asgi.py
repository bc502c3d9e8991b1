"""Serve one aiohttp request with an ASGI application (HTTP only, streaming both ways).

The MCP SDK's streamable HTTP transport is ASGI; the service is aiohttp. This is the bridge for
one route, so `/mcp` shares the service's port, middlewares (request ids, the contract's errors,
bearer-token auth) and lifecycle: the request body is streamed to the app chunk by chunk, the
app's response is streamed back as it is sent (server-sent events included), repeated headers
stay repeated, and `http.disconnect` is delivered once the answer is complete or the client has
gone. (`aiohttp-asgi` was looked at: its resource has no route for the auth middleware to match,
and its `receive` never reports a disconnect, which sse-starlette waits on.)
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from service.logging import get_logger

log = get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# How often a request whose body is read checks whether its client is still connected.
DISCONNECT_POLL_S = 1.0


def scope_of(request: web.Request, extra: Mapping[str, Any] | None = None) -> Scope:
    """The ASGI HTTP scope of an aiohttp request (plus `extra` keys the app may read)."""
    raw_path, _, _ = request.raw_path.partition("?")
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    sock = request.transport.get_extra_info("sockname") if request.transport is not None else None
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": raw_path.encode("latin-1"),
        "query_string": request.rel_url.raw_query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": tuple(peer[:2]) if isinstance(peer, tuple) else None,
        "server": tuple(sock[:2]) if isinstance(sock, tuple) else None,
        "state": {},
        **(extra or {}),
    }


class _Exchange:
    """One request/response pair between aiohttp and the ASGI app."""

    def __init__(self, request: web.Request, headers: Mapping[str, str]):
        self.request = request
        self.headers = headers
        self.response: web.StreamResponse | None = None
        self.body_read = False
        self.complete = asyncio.Event()  # the app sent its last body chunk

    def _gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def receive(self) -> Message:
        if not self.body_read:
            try:
                chunk = await self.request.content.readany()
            except ConnectionResetError:
                self.body_read = True
                return {"type": "http.disconnect"}
            self.body_read = self.request.content.at_eof()
            return {"type": "http.request", "body": chunk, "more_body": not self.body_read}
        # Nothing more to read: the next event is the end of the connection (or of the exchange).
        while not self.complete.is_set() and not self._gone():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.complete.wait(), DISCONNECT_POLL_S)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self.response is not None:
                raise RuntimeError("the ASGI app started its response twice")
            headers: CIMultiDict[str] = CIMultiDict()
            for name, value in message.get("headers", ()):
                headers.add(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
            headers.update(self.headers)
            response = web.StreamResponse(status=int(message["status"]), headers=headers)
            self.response = response
            await response.prepare(self.request)
        elif kind == "http.response.body":
            if self.response is None:
                raise RuntimeError("the ASGI app sent a body before starting its response")
            if self.complete.is_set():
                return  # after the end (a late write of a stream being torn down): nothing to send
            body = bytes(message.get("body", b""))
            if message.get("more_body", False):
                if body:
                    await self.response.write(body)
            else:
                self.complete.set()
                await self.response.write_eof(body)
        # Other events (trailers, pathsend, websocket) are not used by the apps mounted here.


async def serve(
    app: ASGIApp,
    request: web.Request,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Run `app` for `request` and return the response it streamed (with `headers` added: the
    response is sent before a middleware could add any). An app that fails before
    answering raises here (the service's error middleware answers); one that fails mid-answer
    leaves a cut response, as any streaming server would."""
    exchange = _Exchange(request, headers or {})
    try:
        await app(scope_of(request, extra), exchange.receive, exchange.send)
    except ConnectionResetError:
        if exchange.response is None:
            raise
        log.debug("asgi_client_left", path=request.path)  # mid-answer: nothing left to tell it
    except Exception:
        if exchange.response is None:
            raise  # nothing sent yet: the error middleware answers in the contract's shape
        log.exception("asgi_app_failed_mid_answer", path=request.path)
        # The answer must not look complete: end the connection without the body's end.
        if request.transport is not None:
            request.transport.close()
        return exchange.response
    finally:
        exchange.complete.set()
    response = exchange.response
    if response is None:
        raise RuntimeError("the ASGI app returned without answering")
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()  # a no-op when the app ended its body
    return response
