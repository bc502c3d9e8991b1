"""The aiohttp → ASGI bridge (service/mcp/asgi.py) with real Starlette apps on a real aiohttp
server: what a client of `/mcp` would notice — bodies both ways, streaming as it is sent,
repeated headers, errors before an answer in the contract's shape, disconnects reported."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from service.api.middleware import errors_middleware
from service.mcp import asgi

released = asyncio.Event()
disconnects: list[str] = []


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": request.url.query,
            "size": len(body),
            "head": body[:16].decode(errors="replace"),
            "header": request.headers.get("x-probe"),
            "extra": request.scope.get("test.extra"),
        },
        headers={"x-one": "1"},
    )


async def cookies(request: Request) -> Response:
    response = Response("ok")
    response.set_cookie("a", "1")
    response.set_cookie("b", "2")
    return response


async def stream(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        await released.wait()
        yield b"second\n"

    return StreamingResponse(chunks(), media_type="text/plain")


async def sse(request: Request) -> Response:
    async def events() -> AsyncIterator[dict[str, Any]]:
        for i in range(3):
            yield {"event": "tick", "id": str(i), "data": json.dumps({"n": i})}

    return EventSourceResponse(events())


async def hang(request: Request) -> Response:
    """Waits for the client to leave (as an SSE stream does), then says so."""
    await request.body()
    message = await request.receive()
    disconnects.append(message["type"])
    return Response("")


async def boom(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("the app failed before answering")


async def cut(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("the app failed mid-answer")


STARLETTE = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST"]),
        Route("/cookies", cookies),
        Route("/stream", stream),
        Route("/sse", sse),
        Route("/hang", hang, methods=["POST"]),
    ]
)


async def APP(scope: Any, receive: Any, send: Any) -> None:
    """Raw ASGI apps for failures (Starlette would answer a 500 itself), else Starlette's."""
    raw = {"/boom": boom, "/cut": cut}.get(scope["path"])
    await (raw or STARLETTE)(scope, receive, send)


@pytest.fixture
async def base() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await asgi.serve(APP, request, {"test.extra": "seen"}, {"X-Added": "yes"})

    app = web.Application(middlewares=[errors_middleware])
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)  # as `dockyard serve` runs: a handler is not cancelled when its client leaves
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def test_request_and_response_bodies_and_headers(base: str) -> None:
    body = b"x" * (3 * 1024 * 1024 + 7)  # many chunks on the way in
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base}/echo?a=1&b=%20", data=body, headers={"X-Probe": "p"}) as r:
            assert r.status == 200
            got = await r.json()
            assert r.headers["x-one"] == "1"
            assert r.headers["X-Added"] == "yes"
    assert got == {
        "method": "POST",
        "path": "/echo",
        "query": "a=1&b=%20",
        "size": len(body),
        "head": "x" * 16,
        "header": "p",
        "extra": "seen",
    }


async def test_repeated_headers_stay_repeated(base: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/cookies") as r:
        assert sorted(r.headers.getall("Set-Cookie"))[0].startswith("a=1")
        assert len(r.headers.getall("Set-Cookie")) == 2


async def test_a_response_streams_as_it_is_sent(base: str) -> None:
    released.clear()
    async with aiohttp.ClientSession() as http, http.get(f"{base}/stream") as r:
        # the first chunk arrives while the app still holds the second back
        first = await asyncio.wait_for(r.content.readline(), 5)
        assert first == b"first\n"
        released.set()
        assert await asyncio.wait_for(r.content.read(), 5) == b"second\n"


async def test_server_sent_events_arrive_whole(base: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/sse") as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        text = (await asyncio.wait_for(r.read(), 10)).decode()
    datas = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
    assert datas == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert "event: tick" in text and "id: 2" in text


async def test_a_client_that_leaves_is_reported_as_a_disconnect(base: str) -> None:
    disconnects.clear()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(asyncio.TimeoutError):
            async with http.post(f"{base}/hang", data=b"{}", timeout=aiohttp.ClientTimeout(total=0.5)) as r:
                await r.read()
    for _ in range(50):
        if disconnects:
            break
        await asyncio.sleep(0.1)
    assert disconnects == ["http.disconnect"]


async def test_an_app_failing_before_answering_is_the_contract_500(base: str) -> None:
    async with aiohttp.ClientSession() as http, http.get(f"{base}/boom") as r:
        assert r.status == 500
        body = await r.json()
    assert body["error"]["code"] == "internal_error"
    assert "Traceback" not in json.dumps(body)


async def test_an_app_failing_mid_answer_leaves_the_answer_cut_and_the_server_serving(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/cut") as r:
            assert r.status == 200
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()  # the chunked body never ends properly
        async with http.get(f"{base}/echo") as r:
            assert r.status == 200
