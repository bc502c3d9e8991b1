"""A fake Anthropic Messages API that replays scripted conversations to the REAL anthropic SDK.

It speaks the wire format anthropic 2.10 uses (checked against the installed SDK): `POST
/v1/messages` with `anthropic-version` and `Authorization: Bearer <key>` (or `x-api-key`), a JSON
body of `model`, `max_tokens`, `system`, `tools`, `messages`; answers are `Message` objects
(`id`, `type: message`, `role`, `model`, `content` blocks of `text` / `tool_use`, `stop_reason`,
`stop_sequence`, `usage` with input/output/cache token counts) and errors are
`{"type": "error", "error": {"type", "message"}, "request_id"}` with the API's statuses (529
`overloaded_error`, 400 `invalid_request_error`, 401 `authentication_error`, ...).

Like the real API it REFUSES malformed conversations with 400 (and records why in `fake.errors`):
a `tool_use` not answered by a `tool_result` in the very next user turn, a `tool_result` for an
unknown id, tool blocks without `tools`, bad tool definitions, a first turn that is not the user's.
A bot bug in conversation handling therefore fails the test instead of passing silently.

Scripts: replies are queued per *conversation kind* — `"agent"` (requests that carry `tools`, the
fixing loop) and `"review"` (requests without tools, the self-review) — and served in order:

    fake.script(agent=[edit("view", "/workspace/calc.py"), end_turn("Fixed it.")],
                review=[review_pass()])
    fake.fail_next(529, times=2)          # the next two requests answer 529 overloaded

A reply may also be a callable `(request_body: dict) -> Reply`, to answer from what the bot sent.
The fake runs its own event loop in a background thread, so an in-process bot and a bot started as
a subprocess can both reach it at `fake.base_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import secrets
import string
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

API_VERSION = "2026-10-21"  # what anthropic 2.10.0 sends
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
# Anthropic-defined tools the fake knows: type -> the name the API requires for it (no input_schema:
# the model knows the schema). Any other `type` is refused, as the API refuses an unknown one.
TYPED_TOOLS = {"text_editor_20250728": "str_replace_based_edit_tool"}
EDITOR = TYPED_TOOLS["text_editor_20250728"]


def _id(prefix: str, n: int = 24) -> str:
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(n))


@dataclass
class Reply:
    """One answer of the model: content blocks and a stop reason, or an API error."""

    content: list[dict[str, Any]] = field(default_factory=list)
    stop_reason: str = "end_turn"
    status: int = 200
    error_type: str | None = None
    error_message: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    output_tokens: int | None = None


ReplyLike = Reply | Callable[[dict[str, Any]], Reply]


def end_turn(text: str) -> Reply:
    """A final text answer (no tool call)."""
    return Reply([{"type": "text", "text": text}], "end_turn")


def tool_use(name: str, text: str | None = None, **tool_input: Any) -> Reply:
    """One tool call (optionally after some text)."""
    return tool_uses([(name, tool_input)], text=text)


def edit(command: str, path: str, text: str | None = None, **tool_input: Any) -> Reply:
    """One call of Claude's text editor tool (`str_replace_based_edit_tool`), as the model sends it."""
    return tool_use(EDITOR, text, command=command, path=path, **tool_input)


def tool_uses(calls: Iterable[tuple[str, dict[str, Any]]], text: str | None = None) -> Reply:
    """Several tool calls in one turn."""
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for name, tool_input in calls:
        content.append({"type": "tool_use", "id": _id("toolu_"), "name": name, "input": tool_input})
    return Reply(content, "tool_use")


def review_json(verdict: str, problems: list[str] | None = None, **extra: str) -> Reply:
    body = {
        "verdict": verdict,
        "correctness": extra.get("correctness", "The change fixes the reported behaviour."),
        "side_effects": extra.get("side_effects", "None expected."),
        "style": extra.get("style", "Consistent with the surrounding code."),
        "problems": problems or [],
    }
    return end_turn(json.dumps(body))


def review_pass() -> Reply:
    return review_json("pass")


def review_fail(*problems: str) -> Reply:
    return review_json("fail", list(problems), correctness="It does not handle every case.")


def api_error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status=status, error_type=error_type, error_message=message, headers=headers or {})


def overloaded() -> Reply:
    # retry-after-ms keeps the SDK's backoff short in tests (it honours the header)
    return api_error(529, "overloaded_error", "Overloaded", {"retry-after-ms": "50"})


@dataclass
class Seen:
    """One request the fake received."""

    kind: str
    body: dict[str, Any]
    headers: dict[str, str]
    status: int
    reply: dict[str, Any] | None


class FakeAnthropic:
    def __init__(self, api_key: str | None = None):
        self.api_key = api_key or "sk-ant-test-" + secrets.token_hex(12)
        self._lock = threading.RLock()
        self._queues: dict[str, list[ReplyLike]] = {"agent": [], "review": []}
        self._failures: list[Reply] = []
        self.requests: list[Seen] = []
        self.errors: list[str] = []
        self.delay_s = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> FakeAnthropic:
        assert self._thread is None, "already started"
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), loop).result(timeout=30)
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        # handler_cancellation: a request whose client hung up (a cancelled fix) stops its delay
        # instead of waking later and taking a reply scripted for the next test.
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0, handler_cancellation=True
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    def stop(self) -> None:
        loop, thread, runner = self._loop, self._thread, self._runner
        if loop is None or thread is None:
            return
        if runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
        loop.close()
        self._loop = self._thread = self._runner = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self.port is not None, "start() the fake first"
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The bot's environment for this fake."""
        return {"ANTHROPIC_BASE_URL": self.base_url, "ANTHROPIC_API_KEY": self.api_key}

    # --- scripting -----------------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._queues = {"agent": [], "review": []}
            self._failures.clear()
            self.requests.clear()
            self.errors.clear()
            self.delay_s = 0.0

    def script(self, *, agent: Iterable[ReplyLike] = (), review: Iterable[ReplyLike] = ()) -> None:
        """Append replies to the queues (served in order, one per request of that kind)."""
        with self._lock:
            self._queues["agent"].extend(agent)
            self._queues["review"].extend(review)

    def fail_next(self, status: int = 529, times: int = 1) -> None:
        """The next `times` requests (of any kind) answer with this error before any script."""
        kinds = {529: "overloaded_error", 429: "rate_limit_error", 500: "api_error", 503: "api_error"}
        with self._lock:
            for _ in range(times):
                reply = api_error(status, kinds.get(status, "api_error"), "scripted failure")
                reply.headers["retry-after-ms"] = "50"
                self._failures.append(reply)

    def left(self, kind: str) -> int:
        with self._lock:
            return len(self._queues[kind])

    def of_kind(self, kind: str) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.kind == kind]

    def tool_results(self) -> list[dict[str, Any]]:
        """Every distinct tool_result block the bot sent (from the agent conversation)."""
        seen: dict[str, dict[str, Any]] = {}
        for r in self.of_kind("agent"):
            for m in r.body.get("messages", []):
                if m.get("role") != "user" or isinstance(m.get("content"), str):
                    continue
                for b in m["content"]:
                    if b.get("type") == "tool_result":
                        seen[b["tool_use_id"]] = b
        return list(seen.values())

    def user_texts(self) -> list[str]:
        """The user-turn text blocks of the agent conversation's latest request, in order."""
        reqs = self.of_kind("agent")
        if not reqs:
            return []
        out = []
        for m in reqs[-1].body.get("messages", []):
            if m.get("role") != "user":
                continue
            content = m["content"]
            if isinstance(content, str):
                out.append(content)
            else:
                out += [b["text"] for b in content if b.get("type") == "text"]
        return out

    # --- the API ---------------------------------------------------------------------------------------

    async def _unknown(self, request: web.Request) -> web.Response:
        return self._error(404, "not_found_error", f"no route {request.method} {request.path}")

    def _error(
        self, status: int, etype: str, message: str, headers: dict[str, str] | None = None
    ) -> web.Response:
        request_id = _id("req_")
        body = {"type": "error", "error": {"type": etype, "message": message}, "request_id": request_id}
        return web.json_response(body, status=status, headers={"request-id": request_id, **(headers or {})})

    def _refuse(self, message: str) -> web.Response:
        with self._lock:
            self.errors.append(message)
        return self._error(400, "invalid_request_error", message)

    async def _messages(self, request: web.Request) -> web.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            body = await request.json()
        except ValueError:
            return self._refuse("the body is not valid JSON")
        kind = "agent" if body.get("tools") else "review"
        seen = Seen(kind, body, headers, 0, None)
        with self._lock:
            self.requests.append(seen)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        auth = headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}" and headers.get("x-api-key") != self.api_key:
            seen.status = 401
            return self._error(401, "authentication_error", "invalid x-api-key")
        if not headers.get("anthropic-version"):
            seen.status = 400
            return self._refuse("anthropic-version header is required")
        problem = validate_request(body)
        if problem is not None:
            seen.status = 400
            return self._refuse(problem)
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            queued = self._queues[kind].pop(0) if failure is None and self._queues[kind] else None
        if failure is not None:
            seen.status = failure.status
            return self._error(
                failure.status, failure.error_type or "api_error", failure.error_message, failure.headers
            )
        if queued is None:
            seen.status = 400
            return self._refuse(f"fake: no scripted {kind} reply left (request #{len(self.requests)})")
        reply = queued(body) if callable(queued) else queued
        if reply.status != 200:
            seen.status = reply.status
            return self._error(
                reply.status, reply.error_type or "api_error", reply.error_message, reply.headers
            )
        content = [dict(b) for b in reply.content]
        for b in content:  # fresh ids per answer, so one Reply object can be served twice
            if b.get("type") == "tool_use":
                b["id"] = _id("toolu_")
        message = {
            "id": _id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": reply.stop_reason,
            "stop_sequence": None,
            "usage": {
                "input_tokens": _tokens(
                    json.dumps([body.get("system"), body.get("tools"), body["messages"]])
                ),
                "output_tokens": reply.output_tokens or _tokens(json.dumps(content)) + 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "service_tier": "standard",
            },
        }
        seen.status, seen.reply = 200, message
        return web.json_response(message, headers={"request-id": _id("req_"), **reply.headers})


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def validate_request(body: Any) -> str | None:
    """Why the real Messages API would refuse this request (None: it would accept it)."""
    if not isinstance(body, dict):
        return "the body must be an object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: must be a positive integer"
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        if not isinstance(system, list) or any(
            not isinstance(b, dict) or b.get("type") != "text" for b in system
        ):
            return "system: must be a string or a list of text blocks"
    tools = body.get("tools")
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: must be a list"
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or not TOOL_NAME_RE.match(str(t.get("name", ""))):
                return f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            if t["name"] in names:
                return f"tools: tool names must be unique ({t['name']})"
            kind = t.get("type", "custom")
            if kind != "custom":
                if kind not in TYPED_TOOLS:
                    return f"tools.{i}.type: unknown tool type {kind!r}"
                if t["name"] != TYPED_TOOLS[kind]:
                    return f"tools.{i}.name: a {kind} tool must be named {TYPED_TOOLS[kind]!r}"
                extra = set(t) - {"type", "name", "max_characters", "cache_control"}
                if extra or not isinstance(t.get("max_characters", 1), int | None):
                    return f"tools.{i}: unexpected fields for {kind}: {sorted(extra) or 'max_characters'}"
                names.add(t["name"])
                continue
            schema = t.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                return f"tools.{i}.input_schema: type must be 'object'"
            if t["name"] in names:
                return f"tools: tool names must be unique ({t['name']})"
            names.add(t["name"])
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if messages[0].get("role") != "user":
        return "messages.0.role: the first message must use the user role"
    pending: set[str] = set()
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: must be user or assistant"
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not blocks:
            return f"messages.{i}.content: must be a non-empty string or list"
        if pending:
            if role != "user":
                return (
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(sorted(pending))}"
                )
            results = []
            for b in blocks:
                if b.get("type") != "tool_result":
                    break
                results.append(b.get("tool_use_id"))
            if set(results) != pending or len(results) != len(pending):
                return (
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(sorted(pending - set(results)))}"
                    if pending - set(results)
                    else f"messages.{i}: unexpected `tool_use_id` in `tool_result` blocks"
                )
            pending = set()
        for j, b in enumerate(blocks):
            btype = b.get("type") if isinstance(b, dict) else None
            if btype == "text":
                if not isinstance(b.get("text"), str) or not b["text"]:
                    return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
            elif btype == "tool_use":
                if role != "assistant":
                    return f"messages.{i}.content.{j}: tool_use blocks are only allowed in assistant turns"
                if tools is None:
                    return "Requests which include `tool_use` or `tool_result` blocks must define tools."
                if not isinstance(b.get("input"), dict) or not isinstance(b.get("id"), str):
                    return f"messages.{i}.content.{j}: tool_use needs an id and an object input"
                pending.add(b["id"])
            elif btype == "tool_result":
                if role != "user":
                    return f"messages.{i}.content.{j}: tool_result blocks are only allowed in user turns"
                if tools is None:
                    return "Requests which include `tool_use` or `tool_result` blocks must define tools."
                prev = messages[i - 1] if i else {}
                prev_blocks: list[Any] = prev["content"] if isinstance(prev.get("content"), list) else []
                ids = {
                    x.get("id") for x in prev_blocks if isinstance(x, dict) and x.get("type") == "tool_use"
                }
                if b.get("tool_use_id") not in ids:
                    return (
                        f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{b.get('tool_use_id')}. Each `tool_result` block must have a corresponding "
                        "`tool_use` block in the previous message."
                    )
                content_value = b.get("content")
                if content_value is not None and not isinstance(content_value, str | list):
                    return f"messages.{i}.content.{j}.content: must be a string or a list"
            else:
                return f"messages.{i}.content.{j}.type: unsupported block type {btype!r}"
    if pending:
        return (
            f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks "
            f"immediately after: {', '.join(sorted(pending))}"
        )
    marked = [b for b in _all_blocks(body) if isinstance(b, dict) and "cache_control" in b]
    if len(marked) > 4:
        return f"A maximum of 4 blocks with cache_control may be provided. Found {len(marked)}."
    return None


def _all_blocks(body: dict[str, Any]) -> list[Any]:
    """Every block of the request that may carry `cache_control`: tools, system, message content."""
    blocks: list[Any] = list(body.get("tools") or [])
    if isinstance(body.get("system"), list):
        blocks += body["system"]
    for m in body.get("messages") or []:
        if isinstance(m.get("content"), list):
            blocks += m["content"]
    return blocks
