"""A scriptable OpenAI-compatible server on 127.0.0.1 that misbehaves on purpose.

Why: the ``openai`` backend's promises (retries, timeouts, no hang, no duplicate, no leaked
key) can only be checked against a server that fails in every way a real one does. Each
request is attributed to a sample by the content of its last user message; a per-sample script
says what the next requests for it get, then it gets a normal answer:

- ``("429", retry_after)``: 429 with ``Retry-After`` (seconds, or an HTTP-date string)
- ``"500"``: 500 whose error message echoes the Authorization header (scrubbing is tested)
- ``"400"``: 400 echoing the Authorization header (never retried)
- ``("slow", seconds)``: a normal answer after a delay
- ``"hang"``: no answer for a minute (longer than any test timeout)
- ``"trickle"``: headers at once, then one body byte every 0.2 s for a minute
- ``"drop"``: close the connection before answering; ``"drop_mid"``: in the middle of the body
- ``"malformed"``: 200 with a body that is not JSON
- ``"tool"``: a tool call ``answer(value=...)``; ``"bad_tool"``: one with broken arguments
- ``("oversized", megabytes)``: a 200 JSON body of that many MiB (padding in ``content``)

A normal answer to ``q<N>?`` is ``N`` (so the ``qa`` task scores it right), after ``latency``
seconds. Requests with ``"stream": true`` get server-sent events when ``streaming`` is on.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections import Counter
from collections import defaultdict
from typing import Any

from aiohttp import web

Action = str | tuple[str, Any]


class FaultServer:
    """Start with ``with FaultServer(...) as server:``; ``server.base_url`` is the API root."""

    def __init__(self, latency: float = 0.0, streaming: bool = True) -> None:
        self.latency = latency
        self.streaming = streaming
        self.script: dict[str, list[Action]] = defaultdict(list)
        self.requests: Counter[str] = Counter()
        self.authorizations: list[str] = []
        self.bodies: dict[str, dict[str, Any]] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_request_at: float | None = None  # time.perf_counter() values
        self.last_answer_at: float | None = None
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.authorizations.clear()
            self.first_request_at = self.last_answer_at = None

    @property
    def busy_span_s(self) -> float:
        """Seconds from the first request received to the last answer handed over: what a
        client's work took as the server saw it, with no client start-up in it."""
        if self.first_request_at is None or self.last_answer_at is None:
            return 0.0
        return self.last_answer_at - self.first_request_at

    @property
    def total_requests(self) -> int:
        return sum(self.requests.values())

    # --- handling ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        content = _last_user(body)
        auth = request.headers.get("Authorization", "")
        with self._lock:
            if self.first_request_at is None:
                self.first_request_at = time.perf_counter()
            self.requests[content] += 1
            self.authorizations.append(auth)
            self.bodies[content] = body
            queue = self.script.get(content)
            action: Action = queue.pop(0) if queue else "ok"
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._act(action, request, body, content, auth)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.last_answer_at = time.perf_counter()

    async def _act(
        self, action: Action, request: web.Request, body: dict, content: str, auth: str
    ) -> web.StreamResponse:
        name, arg = (action, None) if isinstance(action, str) else action
        if name == "429":
            return _error(429, "slow down", {"Retry-After": str(arg)})
        if name in ("500", "400"):
            return _error(int(name), f"failure for credentials {auth!r}")
        if name == "hang":
            await asyncio.sleep(60)
        if name == "slow":
            await asyncio.sleep(float(arg))
        if name == "malformed":
            return web.Response(text='{"choices": [{"mess', content_type="application/json")
        if name == "drop":
            request.transport.close()  # type: ignore[union-attr]
            return web.Response()
        if name in ("drop_mid", "trickle"):
            return await _partial(request, name)
        if name == "oversized":
            padding = "x" * int(float(arg) * 1024 * 1024)
            return web.json_response(_completion(body, {"role": "assistant", "content": padding}))
        await asyncio.sleep(self.latency)
        message = _message(name, content)
        if body.get("stream") and self.streaming:
            return await _stream(request, body, message)
        return web.json_response(_completion(body, message))


def _last_user(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages", []) if m.get("role") == "user"]
    return str(users[-1].get("content")) if users else ""


def _answer(content: str) -> str:
    found = re.search(r"q(\d+)\?", content)
    return found.group(1) if found else "ok"


def _message(kind: str, content: str) -> dict[str, Any]:
    if kind in ("tool", "bad_tool"):
        arguments = '{"value": ' + _answer(content) + "}" if kind == "tool" else '{"value": '
        call = {
            "id": "call_x",
            "type": "function",
            "function": {"name": "answer", "arguments": arguments},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}
    return {"role": "assistant", "content": _answer(content)}


def _completion(body: dict[str, Any], message: dict[str, Any]) -> dict[str, Any]:
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13},
    }


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "test"}}
    return web.json_response(body, status=status, headers=headers)


async def _partial(request: web.Request, name: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = 4096
    await response.prepare(request)
    if name == "drop_mid":
        await response.write(b'{"choices": [')
        await asyncio.sleep(0.05)
        request.transport.abort()  # type: ignore[union-attr]
        return response
    for _ in range(300):
        await response.write(b" ")
        await asyncio.sleep(0.2)
    return response


async def _stream(
    request: web.Request, body: dict[str, Any], message: dict[str, Any]
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)

    async def send(data: Any) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        await response.write(f"data: {text}\n\n".encode())

    base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": body.get("model")}
    await send({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    for delta in _deltas(message):
        await send({**base, "choices": [{"index": 0, "delta": delta}]})
    finish = "tool_calls" if message.get("tool_calls") else "stop"
    await send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {"prompt_tokens": 11, "completion_tokens": 2, "total_tokens": 13}
        await send({**base, "choices": [], "usage": usage})
    await send("[DONE]")
    await response.write_eof()
    return response


def _deltas(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Content one character at a time; a tool call as name then arguments in two pieces."""
    if not message.get("tool_calls"):
        return [{"content": ch} for ch in message["content"]]
    out = []
    for index, call in enumerate(message["tool_calls"]):
        args = call["function"]["arguments"]
        head = {"index": index, "id": call["id"], "type": "function"}
        out.append({"tool_calls": [{**head, "function": {"name": call["function"]["name"]}}]})
        for piece in (args[: len(args) // 2], args[len(args) // 2 :]):
            out.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return out
