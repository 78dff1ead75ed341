"""The HTTP side of ``harness serve``: an OpenAI-compatible API over one harness backend.

Imported only when the command runs, so ``harness plugins`` never loads aiohttp. The request
and response conversions are plain functions (no aiohttp) so they can be tested directly.

Endpoints: ``POST /v1/chat/completions`` (tools, tool_choice, streaming), ``POST
/v1/completions`` (text prompts through ``Backend.complete``), ``GET /v1/models``. Errors use
OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``; a backend failure is a 500
whose message names the exception, with the traceback only in the server's log (a
``ValueError`` or ``InputError``, such as a prompt longer than the context, is a 400).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import logging
import math
import signal
import time
import uuid
from collections.abc import Callable
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from harness import Backend
from harness import ChatRequest
from harness import ChatResponse
from harness import GenerationParams
from harness import InputError
from harness import Message
from harness import ToolCall

log = logging.getLogger("harness.serve")

JSON = dict[str, Any]
MODES = ("prompt", "native", "constrained")
TOOL_MODES = ("auto", "native", "constrained")
ROLES = {"system", "user", "assistant", "tool", "developer"}
MAX_BODY = 32 * 1024 * 1024
MAX_CONTAINERS = 200_000


class BadRequest(Exception):
    """A request the server refuses (400), with the offending field as OpenAI names it."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def error_body(message: str, kind: str, code: str, param: str | None = None) -> JSON:
    """OpenAI's error shape, which clients (openai SDK, lm-eval) know how to show."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


# --- request -> ChatRequest -----------------------------------------------------------------


def parse_content(content: Any, where: str) -> str | None:
    """Message content: a string, null, or a list of text parts (joined; other parts refused)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise BadRequest(f"{where}: content must be a string, null or a list of parts", where)
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
            raise BadRequest(f"{where}[{index}]: only text content parts are supported", where)
        if not isinstance(part.get("text"), str):
            raise BadRequest(f"{where}[{index}].text must be a string", where)
        texts.append(part["text"])
    return "".join(texts)


def parse_tool_calls(raw: Any, where: str) -> tuple[ToolCall, ...] | None:
    """An assistant message's ``tool_calls`` (arguments as a JSON string or an object)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequest(f"{where} must be a list", where)
    calls = []
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("function"), dict):
            raise BadRequest(f"{here}.function must be an object with a name", here)
        try:
            calls.append(ToolCall.from_openai(item))
        except ValueError as exc:
            raise BadRequest(f"{here}.function: {exc}", here) from None
    return tuple(calls)


def parse_messages(raw: Any) -> tuple[Message, ...]:
    """OpenAI messages -> harness messages; ``developer`` is read as ``system``."""
    if not isinstance(raw, list) or not raw:
        raise BadRequest("'messages' must be a non-empty list", "messages", "missing_messages")
    messages = []
    for index, item in enumerate(raw):
        where = f"messages[{index}]"
        if not isinstance(item, dict) or item.get("role") not in ROLES:
            raise BadRequest(f"{where}.role must be one of {sorted(ROLES)}", where)
        role = "system" if item["role"] == "developer" else item["role"]
        name = item.get("name")
        messages.append(
            Message(
                role=role,
                content=parse_content(item.get("content"), f"{where}.content"),
                tool_calls=parse_tool_calls(item.get("tool_calls"), f"{where}.tool_calls"),
                tool_call_id=_optional_str(item.get("tool_call_id"), f"{where}.tool_call_id"),
                name=_optional_str(name, f"{where}.name"),
            )
        )
    return tuple(messages)


def _optional_str(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise BadRequest(f"{where} must be a string", where)
    return value


def parse_tools(raw: Any) -> tuple[JSON, ...] | None:
    """Function tools, passed on unchanged (their ``parameters`` are JSON Schema)."""
    if raw is None or raw == []:
        return None
    if not isinstance(raw, list):
        raise BadRequest("'tools' must be a list", "tools")
    for index, tool in enumerate(raw):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools[{index}] must be an object", "tools")
        function = tool.get("function")
        if tool.get("type", "function") != "function" or not isinstance(function, dict):
            raise BadRequest(f"tools[{index}]: only function tools are supported", "tools")
        if not isinstance(function.get("name"), str) or not function["name"]:
            raise BadRequest(f"tools[{index}].function.name must be a string", "tools")
    return tuple(raw)


def parse_tool_choice(raw: Any, tools: tuple[JSON, ...] | None) -> str | JSON | None:
    """``auto``/``none``/``required`` or a named function that must be among ``tools``."""
    if raw is None or raw in ("auto", "none", "required"):
        return raw
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise BadRequest(
            "'tool_choice' must be auto, none, required or "
            '{"type": "function", "function": {"name": ...}}',
            "tool_choice",
        )
    names = {t["function"]["name"] for t in tools or ()}
    if function["name"] not in names:
        raise BadRequest(f"tool_choice names {function['name']!r}, not among tools", "tool_choice")
    return {"type": "function", "function": {"name": function["name"]}}


def pick_mode(
    body: JSON,
    tools: tuple[JSON, ...] | None,
    tool_choice: str | JSON | None,
    capabilities: frozenset[str],
    tool_mode: str = "auto",
) -> str | None:
    """How the backend is asked for calls (see docs/serve.md, "Tool modes").

    The request's ``harness_mode`` wins; else the server's ``--tool-mode``; else ``auto``:
    ``constrained`` when a call is demanded (``required`` or a named function) and the backend
    can force one with a grammar, otherwise ``native``. No tools (or ``none``): no mode.
    """
    asked = body.get("harness_mode")
    if asked is not None:
        if asked not in MODES:
            raise BadRequest(f"harness_mode must be one of {list(MODES)}", "harness_mode")
        if asked == "constrained" and "constrained" not in capabilities:
            raise BadRequest("this backend has no constrained mode", "harness_mode")
        return asked if tools or asked == "prompt" else None
    if not tools or tool_choice == "none":
        return None
    if tool_mode == "constrained" and "constrained" in capabilities:
        return "constrained"
    demanded = tool_choice == "required" or isinstance(tool_choice, dict)
    if tool_mode == "auto" and demanded and "constrained" in capabilities:
        return "constrained"
    return "native"


def generation_params(body: JSON) -> GenerationParams:
    """Sampling settings; unknown fields are ignored (clients send many), bad values refused."""
    if body.get("n") not in (None, 1):
        raise BadRequest("only n=1 is supported", "n")
    _refuse_unsupported(body)
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    stop = body.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    if not all(isinstance(s, str) for s in stops):
        raise BadRequest("'stop' must be a string or a list of strings", "stop")
    return GenerationParams(
        max_tokens=_number(max_tokens, "max_tokens", int, minimum=1),
        temperature=_number(body.get("temperature"), "temperature", float, minimum=0),
        top_p=_number(body.get("top_p"), "top_p", float, minimum=0),
        stop=stops,
        seed=_number(body.get("seed"), "seed", int),
    )


#: options a client may send with their default value, which the server cannot honour otherwise
UNSUPPORTED = {
    "parallel_tool_calls": (None, True),
    "response_format": (None, {"type": "text"}),
    "logprobs": (None, False),
}


def _refuse_unsupported(body: JSON) -> None:
    """Refuse, rather than silently drop, an option the backend cannot honour."""
    for name, defaults in UNSUPPORTED.items():
        if name in body and body[name] not in defaults:
            raise BadRequest(f"{name}={json.dumps(body[name])} is not supported here", name)


def _number(value: Any, name: str, kind: type, minimum: float | None = None) -> Any:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"'{name}' must be a number", name)
    if not math.isfinite(value):
        raise BadRequest(f"'{name}' must be a finite number", name)
    if kind is int and value != int(value):
        raise BadRequest(f"'{name}' must be an integer", name)
    if minimum is not None and value < minimum:
        raise BadRequest(f"'{name}' must be at least {minimum}", name)
    return kind(value)


def chat_request(body: Any, capabilities: frozenset[str], tool_mode: str = "auto") -> ChatRequest:
    """An OpenAI chat-completions body -> the :class:`ChatRequest` the backend answers."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    messages = parse_messages(body.get("messages"))
    tools = parse_tools(body.get("tools"))
    tool_choice = parse_tool_choice(body.get("tool_choice"), tools)
    mode = pick_mode(body, tools, tool_choice, capabilities, tool_mode)
    return ChatRequest(
        messages=messages,
        tools=None if mode in (None, "prompt") else tools,
        tool_choice=None if mode in (None, "prompt") else tool_choice,
        params=generation_params(body),
        mode=mode,
    )


# --- ChatResponse -> OpenAI ----------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What one call produced, with the ids and stamps every chunk of it repeats."""

    response: ChatResponse
    model: str
    mode: str | None
    id: str
    created: int
    calls: tuple[JSON, ...]

    @property
    def finish_reason(self) -> str:
        if self.response.tool_calls:
            return "tool_calls"
        return "length" if self.response.finish_reason == "length" else "stop"

    @property
    def usage(self) -> JSON:
        prompt = self.response.input_tokens or 0
        completion = self.response.output_tokens or 0
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def extension(self) -> JSON:
        """Harness-only fields (clients ignore unknown keys): mode, timings, decode problems."""
        out: JSON = {"mode": self.mode, "timing": dict(self.response.timing)}
        if self.calls and self.response.text:
            out["raw_text"] = self.response.text
        if "tool_call_error" in self.response.extra:
            out["tool_call_error"] = self.response.extra["tool_call_error"]
        return out

    def head(self, kind: str) -> JSON:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}


def new_reply(response: ChatResponse, model: str, mode: str | None, prefix: str) -> Reply:
    """Stamp a backend response with an id, a time and ids for its tool calls."""
    calls = tuple(c.to_openai(f"call_{uuid.uuid4().hex[:24]}") for c in response.tool_calls or ())
    return Reply(response, model, mode, f"{prefix}-{uuid.uuid4().hex}", int(time.time()), calls)


def content(reply: Reply) -> str | None:
    """The answer's text, or null beside tool calls as OpenAI does: a backend's raw text then
    is the calls' own encoding (a JSON array, ``<tool_call>`` blocks); the ``harness``
    extension field keeps it as ``raw_text``."""
    return None if reply.calls else reply.response.text


def completion_body(reply: Reply) -> JSON:
    """A ``chat.completion`` object."""
    message: JSON = {"role": "assistant", "content": content(reply)}
    if reply.calls:
        message["tool_calls"] = list(reply.calls)
    choice = {"index": 0, "message": message, "logprobs": None}
    return reply.head("chat.completion") | {
        "choices": [choice | {"finish_reason": reply.finish_reason}],
        "usage": reply.usage,
        "harness": reply.extension(),
    }


def stream_chunks(reply: Reply, include_usage: bool) -> list[JSON]:
    """``chat.completion.chunk`` objects: role, the whole text in one chunk (the backend is
    not incremental), one delta per tool call, the finish reason, then usage if asked for."""
    head = reply.head("chat.completion.chunk")

    def chunk(delta: JSON, finish: str | None = None) -> JSON:
        body = head | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return body | ({"usage": None} if include_usage else {})

    chunks = [chunk({"role": "assistant", "content": ""})]
    text = content(reply)
    if text:
        chunks.append(chunk({"content": text}))
    for index, call in enumerate(reply.calls):
        chunks.append(chunk({"tool_calls": [{"index": index, **call}]}))
    chunks.append(chunk({}, reply.finish_reason))
    if include_usage:
        chunks.append(head | {"choices": [], "usage": reply.usage})
    return chunks


def text_completion_body(replies: list[Reply], model: str) -> JSON:
    """A ``text_completion`` object with one choice per prompt."""
    first = replies[0]
    prompt = sum(r.usage["prompt_tokens"] for r in replies)
    completion = sum(r.usage["completion_tokens"] for r in replies)
    return first.head("text_completion") | {
        "choices": [
            {
                "index": i,
                "text": r.response.text or "",
                "logprobs": None,
                "finish_reason": r.finish_reason,
            }
            for i, r in enumerate(replies)
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def text_completion_chunks(replies: list[Reply], include_usage: bool) -> list[JSON]:
    """Streamed ``text_completion`` objects: per prompt, its text then its finish reason (the
    backend is not incremental), then the usage if asked for."""
    head = replies[0].head("text_completion")
    chunks = []
    for index, reply in enumerate(replies):
        for text, finish in ((reply.response.text or "", None), ("", reply.finish_reason)):
            choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish}
            chunks.append(head | {"choices": [choice]})
    if include_usage:
        chunks.append(head | {"choices": [], "usage": text_completion_body(replies, "")["usage"]})
    return chunks


def completion_prompts(body: Any) -> list[str]:
    """``prompt`` of a completions body: a string or a list of strings (not token ids)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if body.get("echo") or body.get("logprobs"):
        raise BadRequest("echo and logprobs are not supported (no log-likelihoods)", "logprobs")
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise BadRequest("'prompt' must be a string or a non-empty list of strings", "prompt")
    return prompts


def _include_usage(body: JSON) -> bool:
    options = body.get("stream_options") or {}
    return bool(isinstance(options, dict) and options.get("include_usage"))


class SampleIndex:
    """Which sample of a manifest's tasks a conversation is, for backends that answer by
    (task, sample id) (``replay``): a served request carries no ids, only the messages a task
    built, so the messages are the key."""

    def __init__(self, keys: dict[str, tuple[str, str]]) -> None:
        self.keys = keys

    @classmethod
    def from_tasks(cls, tasks: dict[str, Any]) -> SampleIndex:
        keys = {}
        for task_id, task in tasks.items():
            for sample in task.samples():
                keys[_conversation_key(sample.messages)] = (task_id, str(sample.id))
        return cls(keys)

    def identify(self, chat: ChatRequest) -> ChatRequest:
        found = self.keys.get(_conversation_key(chat.messages))
        if found is None:
            raise BadRequest(
                "no recorded answer for this conversation: the served backend replays "
                "recorded outputs, so send the messages of a sample of the manifest's tasks",
                "messages",
                "unknown_sample",
            )
        return replace(chat, task=found[0], sample_id=found[1])


def _conversation_key(messages: Sequence[Message]) -> str:
    """The messages' roles and text (tool calls included), as one digest."""
    parts = [[m.role, m.content, [c.to_dict() for c in m.tool_calls or ()]] for m in messages]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


# --- the server -----------------------------------------------------------------------------


class Server:
    """Serves one backend; at most ``backend.max_concurrency`` calls run at once, each on a
    worker thread, because backends are blocking (llama.cpp holds a lock per call)."""

    def __init__(
        self,
        backend: Backend,
        model: str,
        tool_mode: str = "auto",
        index: SampleIndex | None = None,
    ) -> None:
        self.backend = backend
        self.model = model
        self.tool_mode = tool_mode
        self.index = index
        self.capabilities = frozenset(getattr(backend, "capabilities", ()) or ())
        self.limit = max(1, int(getattr(backend, "max_concurrency", 1) or 1))
        self.executor = ThreadPoolExecutor(self.limit, thread_name_prefix="harness-serve")
        self.slots = asyncio.Semaphore(self.limit)

    async def call(self, function: Callable[..., ChatResponse], *args: Any) -> ChatResponse:
        """Run a blocking backend method on the pool. A ``ValueError`` or ``InputError`` is the
        request's fault (a 400 that clients do not retry); anything else is a logged 500."""
        async with self.slots:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self.executor, function, *args)
            except (ValueError, InputError) as exc:  # e.g. a prompt longer than n_ctx
                log.info("backend %r refused a request: %s", self.model, exc)
                message = f"the backend refused the request: {exc}"
                raise BadRequest(message, None, "backend_refused") from exc
            except Exception as exc:
                log.exception("backend %r failed", self.model)
                raise BackendFailure(f"backend error: {type(exc).__name__}: {exc}") from exc

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        chat = chat_request(body, self.capabilities, self.tool_mode)
        if self.index is not None:
            chat = self.index.identify(chat)
        response = await self.call(self.backend.chat, chat)
        reply = new_reply(response, self.model, chat.mode, "chatcmpl")
        if body.get("stream"):
            return await send_events(request, stream_chunks(reply, _include_usage(body)))
        return web.json_response(completion_body(reply))

    async def completions(self, request: web.Request) -> web.StreamResponse:
        body = await read_json(request)
        prompts = completion_prompts(body)
        if self.index is not None:
            raise BadRequest(
                "the served backend replays recorded chat outputs: use /v1/chat/completions "
                "with the messages of one of the manifest's samples",
                "prompt",
                "unknown_sample",
            )
        params = ChatRequest(messages=(), params=generation_params(body))
        replies = []
        for prompt in prompts:
            response = await self.call(self.backend.complete, prompt, params)
            replies.append(new_reply(response, self.model, None, "cmpl"))
        if body.get("stream"):
            chunks = text_completion_chunks(replies, _include_usage(body))
            return await send_events(request, chunks)
        return web.json_response(text_completion_body(replies, self.model))

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [self._model_entry()]})

    async def model_by_id(self, request: web.Request) -> web.Response:
        if request.match_info["model"] != self.model:
            raise web.HTTPNotFound(reason=f"no model {request.match_info['model']!r} here")
        return web.json_response(self._model_entry())

    def _model_entry(self) -> JSON:
        return {"id": self.model, "object": "model", "created": 0, "owned_by": "harness"}

    def close(self) -> None:
        """Wait for a call still running, so the backend is not closed under it."""
        self.executor.shutdown(wait=True, cancel_futures=True)


class BackendFailure(Exception):
    """The backend raised; the client gets the message, the log gets the traceback."""


async def read_json(request: web.Request) -> Any:
    """The body as JSON. Parsed objects and arrays cost ~30 times their text in memory, so a
    body of more than ``MAX_CONTAINERS`` of them is refused before parsing (a real request
    holds a few thousand)."""
    raw = await request.read()
    if raw.count(b"{") + raw.count(b"[") > MAX_CONTAINERS:
        raise BadRequest(
            f"the request body holds more than {MAX_CONTAINERS:,} JSON objects and arrays; "
            "send fewer messages or tools per request",
            code="request_too_large",
        )
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, 4,300+ digits, depth
        deep = isinstance(exc, RecursionError)
        reason = "nested too deeply" if deep else str(exc).split(": value has")[0]
        raise BadRequest(
            f"the request body is not valid JSON: {reason}", code="invalid_json"
        ) from None


async def send_events(request: web.Request, chunks: list[JSON]) -> web.StreamResponse:
    """Server-Sent Events: one ``data:`` line per chunk, then ``data: [DONE]``."""
    stream = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await stream.prepare(request)
    for chunk in chunks:
        await stream.write(f"data: {json.dumps(chunk)}\n\n".encode())
    await stream.write(b"data: [DONE]\n\n")
    await stream.write_eof()
    return stream


@web.middleware
async def openai_errors(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    """Every error in OpenAI's shape: 400 bad request, 404/405 routing, 500 backend failure."""
    try:
        return await handler(request)
    except BadRequest as exc:
        body = error_body(exc.message, "invalid_request_error", exc.code, exc.param)
        return web.json_response(body, status=400)
    except BackendFailure as exc:
        return web.json_response(error_body(str(exc), "server_error", "backend_error"), status=500)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        body = error_body(
            f"{exc.reason}: {request.method} {request.path}",
            "invalid_request_error",
            str(exc.status),
        )
        return web.json_response(body, status=exc.status)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        body = error_body(
            "internal server error (see the server's log)", "server_error", "internal"
        )
        return web.json_response(body, status=500)


@web.middleware
async def loopback_only(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
    """A loopback server answers loopback names only: a ``Host`` that is not (DNS rebinding)
    or a browser ``Origin`` from another site (a web page driving the model, and behind an
    ``openai`` backend spending the user's key) gets a 403."""
    origin = request.headers.get("Origin")
    host_ok = _is_loopback_name(request.host.rsplit(":", 1)[0] if request.host else "")
    origin_ok = origin is None or _is_loopback_name(urlsplit(origin).hostname or "")
    if not (host_ok and origin_ok):
        body = error_body(
            "this server answers loopback clients only (Host and Origin must be loopback)",
            "invalid_request_error",
            "forbidden",
        )
        return web.json_response(body, status=403)
    return await handler(request)


def _is_loopback_name(name: str) -> bool:
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def create_app(server: Server, loopback: bool = True) -> web.Application:
    """The aiohttp application: the OpenAI routes over ``server``. ``loopback`` (the default:
    the server listens on loopback) refuses requests with another ``Host`` or ``Origin``."""
    guards = [loopback_only] if loopback else []
    app = web.Application(middlewares=[openai_errors, *guards], client_max_size=MAX_BODY)
    app.router.add_post("/v1/chat/completions", server.chat_completions)
    app.router.add_post("/v1/completions", server.completions)
    app.router.add_get("/v1/models", server.models)
    app.router.add_get("/v1/models/{model}", server.model_by_id)
    return app


def base_url(address: Any) -> str:
    """``http://HOST:PORT/v1`` for a bound socket address (IPv6 hosts in brackets)."""
    host, port = address[0], address[1]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/v1"


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Listen on ``host:port`` (0: any free port); return the runner and the base URL."""
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, base_url(runner.addresses[0])


async def serve_until_stopped(
    app: web.Application, host: str, port: int, on_ready: Callable[[str], None]
) -> None:
    """Serve until SIGINT or SIGTERM, then close connections cleanly."""
    runner, url = await start(app, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        on_ready(url)
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def run_server(
    backend: Backend,
    model: str,
    host: str,
    port: int,
    on_ready: Callable[[str], None],
    tool_mode: str = "auto",
    index: SampleIndex | None = None,
) -> None:
    """Blocking entry point of the command: serve ``backend`` as ``model``."""

    async def main() -> None:
        server = Server(backend, model, tool_mode, index)
        try:
            app = create_app(server, loopback=_is_loopback_name(host))
            await serve_until_stopped(app, host, port, on_ready)
        finally:
            server.close()

    asyncio.run(main())
