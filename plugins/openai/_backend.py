"""The ``openai`` backend: OpenAI-compatible chat completions over HTTP.

Why this shape: the runner calls :meth:`OpenAIBackend.chat` from a pool of worker threads, but
HTTP waits are cheapest on one event loop. So the backend owns a daemon thread running an
asyncio loop with one ``aiohttp.ClientSession`` (a connection pool sized to
``max_concurrency``; aiohttp rather than httpx because it costs about a tenth of the CPU per
request, which is what bounds throughput on a small machine at high concurrency);
``chat`` hands the request to that loop and waits with a hard deadline, so that no sample can
hang whatever a server does. Each attempt has its own overall timeout (``timeout_s``, connect
to last byte); transient failures are retried with exponential backoff and full jitter, and a
429's ``Retry-After`` is honoured. The API key lives only in the client's headers: every text
that leaves this module (errors, logs, ``info()``) is scrubbed of it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import email.utils
import json
import logging
import math
import random
import threading
import time
from collections.abc import Coroutine
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
from harness_plugins.shared import scoring
from harness_plugins.shared.cache import ResponseCache
from harness_plugins.shared.cache import cache_key
from harness_plugins.shared.cache import default_cache_path

from harness import Backend
from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import Message
from harness import ToolCall

from . import OpenAIParams

log = logging.getLogger("harness.openai")

RETRY_STATUS = frozenset({408, 409, 429})


class OpenAIAPIError(Exception):
    """A request that failed for good. ``retries`` (the retries made before giving up) is read
    by the runner and counted in the results; ``status`` is the last HTTP status, if any."""

    def __init__(self, message: str, retries: int = 0, status: int | None = None) -> None:
        super().__init__(message)
        self.retries = retries
        self.status = status


class _Retryable(Exception):
    """One attempt failed in a way worth another try."""

    def __init__(
        self, message: str, retry_after: float | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


@dataclass
class _Attempts:
    """Shared between ``chat`` and the coroutine so a hard-deadline error can say how many
    retries were made."""

    retries: int = 0


class OpenAIBackend(Backend):
    """Chat completions against ``base_url`` with retries, a response cache and streaming."""

    capabilities = frozenset({"native_tools"})
    params: OpenAIParams

    def __init__(self, params: OpenAIParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self._secret = params.api_key or ""
        self.url = _endpoint(params.base_url)
        self.model = params.model
        self.max_concurrency = params.max_concurrency
        self.timeout_s = float(params.timeout_s)
        self.max_retries = params.max_retries
        self.stream = params.stream
        self.capabilities = params.capabilities()
        self.completions_url = self.url.removesuffix("/chat/completions") + "/completions"
        cache = params.cache  # YAML 1.1 reads an unquoted on/off as a boolean
        self.cache_mode = ("on" if cache else "off") if isinstance(cache, bool) else cache
        self.cache_path = Path(params.cache_path or default_cache_path())
        self._cache = None if self.cache_mode == "off" else ResponseCache(self.cache_path)
        self._slots = threading.BoundedSemaphore(self.max_concurrency)
        self._pending: set[cf.Future[Any]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"openai-{context.id}", daemon=True
        )
        self._thread.start()
        self._client: aiohttp.ClientSession = self._on_loop(self._make_client()).result(30)

    # --- the public surface -----------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        body = self.request_body(request)
        key = self._cache_key(body, request) if self._caching(body) else None
        if key is not None and self._cache is not None:
            hit = self._cache.get(key)
            if hit is not None:
                return _as_cached(hit, time.perf_counter() - started)
        with self._slots:
            response = self._submit(body)
        if key is not None and self._cache is not None:
            stored = {k: v for k, v in response.extra.items() if k != "retries"}
            self._cache.put(key, replace(response, extra=stored))
        return response

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        """The continuation's log-probability from the server's prompt log-probabilities
        (``/completions`` with ``echo``, ``logprobs: 1``, ``max_tokens: 0``): the tokens whose
        ``text_offset`` falls after the context (the rule of harness_plugins.shared.scoring);
        greedy when each is its position's top token."""
        if "loglikelihood" not in self.capabilities:
            raise ValueError("set logprobs: true on a server that returns prompt logprobs")
        context, continuation = scoring.split_spaces(context, continuation)
        body = {
            "model": self.model,
            "prompt": context + continuation,
            "max_tokens": 0,
            "echo": True,
            "logprobs": 1,
            "temperature": 0,
        }
        with self._slots:
            data = self._submit(body, self.completions_url).extra["raw"]
        return prompt_loglikelihood(data, len(context))

    def info(self) -> dict[str, Any]:
        return {
            "base_url": self._scrub(self.url),
            "model": self.model,
            "max_concurrency": self.max_concurrency,
            "timeout_s": self.timeout_s,
            "max_retries": self.max_retries,
            "stream": self.stream,
            "cache": {"mode": self.cache_mode, "path": str(self.cache_path)},
            "authenticated": bool(self._secret),
        }

    def close(self) -> None:
        """Cancel what is still waiting (an interrupted run), close the client and the loop."""
        for future in list(self._pending):
            future.cancel()
        if not self._loop.is_closed():
            try:
                self._on_loop(self._client.close()).result(5)
            except Exception as exc:  # closing must not hide the run's own outcome
                log.debug("openai %s: closing the client: %s", self.context.id, exc)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # --- the request body -------------------------------------------------------------------

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body sent for ``request`` (without the streaming fields)."""
        body: dict[str, Any] = {"model": self.model, "messages": wire_messages(request.messages)}
        body.update(self._generation(request))
        body.update(_tool_fields(request))
        return body

    def _generation(self, request: ChatRequest) -> dict[str, Any]:
        p, own = request.params, self.params
        values = {
            "max_tokens": _first(p.max_tokens, own.max_tokens),
            "temperature": _first(p.temperature, own.temperature),
            "top_p": _first(p.top_p, own.top_p),
            "stop": list(p.stop) or own.stop or None,
            "seed": _first(p.seed, own.seed),
        }
        out = {k: v for k, v in values.items() if v is not None}
        return {**out, **(own.extra_body or {}), **p.extra}

    # --- the cache --------------------------------------------------------------------------

    def _caching(self, body: dict[str, Any]) -> bool:
        """auto: deterministic requests only (temperature 0 or unset, or a seed)."""
        if self._cache is None:
            return False
        if self.cache_mode == "on":
            return True
        return not body.get("temperature") or body.get("seed") is not None

    def _cache_key(self, body: dict[str, Any], request: ChatRequest) -> str:
        """Everything that decides the answer (the body holds model, messages, tools, tool
        choice and parameters); never the API key, which is only in the headers."""
        return cache_key(
            {"backend": "openai", "base_url": self.url, "body": body, "mode": request.mode}
        )

    # --- the event loop ---------------------------------------------------------------------

    async def _make_client(self) -> aiohttp.ClientSession:
        """Created on the loop (aiohttp binds a session to it). The per-attempt limit is
        ``asyncio.timeout`` in :meth:`_attempt`; the session's own is a backstop."""
        headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
        return aiohttp.ClientSession(
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s + 1, connect=self.timeout_s),
            connector=aiohttp.TCPConnector(limit=self.max_concurrency),
            trust_env=True,  # HTTP(S)_PROXY and NO_PROXY, as other clients honour them
        )

    def _on_loop(self, coro: Coroutine[Any, Any, Any]) -> cf.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self._loop)

    def _deadline_s(self) -> float:
        """Longest a request may take in all: every attempt timing out and every wait at its
        cap, plus a margin. Reaching it means something is wrong, not that the server is slow."""
        wait = max(float(self.params.backoff_max_s), self._retry_after_cap())
        return (self.timeout_s + wait) * (self.max_retries + 1) + 10

    def _submit(self, body: dict[str, Any], url: str | None = None) -> ChatResponse:
        """``url`` other than the chat endpoint: the JSON comes back as ``extra["raw"]``."""
        attempts = _Attempts()
        try:
            future = self._on_loop(self._with_retries(body, attempts, url))
        except RuntimeError:  # the loop was closed under us (the run is stopping)
            raise OpenAIAPIError("the openai backend was closed before the request") from None
        self._pending.add(future)
        try:
            return future.result(timeout=self._deadline_s())
        except cf.TimeoutError:
            future.cancel()
            raise OpenAIAPIError(
                f"no answer from {self.url} within the hard deadline of {self._deadline_s():.0f}s",
                retries=attempts.retries,
            ) from None
        except cf.CancelledError:
            raise OpenAIAPIError(
                "request cancelled: the run is stopping", retries=attempts.retries
            ) from None
        finally:
            self._pending.discard(future)

    # --- retries ----------------------------------------------------------------------------

    async def _with_retries(
        self, body: dict[str, Any], attempts: _Attempts, url: str | None = None
    ) -> ChatResponse:
        """Attempts until one succeeds or the retries run out. ``total_s`` covers them all
        (backoff included); ``attempt_s`` and ``ttft_s`` are those of the successful one."""
        started = time.perf_counter()
        while True:
            try:
                response = await self._attempt(body, attempts, url)
                timing = {**response.timing, "total_s": round(time.perf_counter() - started, 6)}
                return replace(response, timing=timing)
            except _Retryable as exc:
                if attempts.retries >= self.max_retries:
                    raise OpenAIAPIError(
                        f"{exc}; gave up after {attempts.retries + 1} attempt(s) to {self.url}",
                        retries=attempts.retries,
                        status=exc.status,
                    ) from None
                delay = self._delay(attempts.retries, exc.retry_after)
                log.info(
                    "openai %s: %s; retry %d of %d in %.2fs",
                    self.context.id,
                    exc,
                    attempts.retries + 1,
                    self.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)
                attempts.retries += 1

    def _delay(self, retry: int, retry_after: float | None) -> float:
        """The server's Retry-After (capped) when it gave one, else full jitter:
        uniform in [0, min(cap, base * 2**retry)]."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self._retry_after_cap())
        base = float(self.params.backoff_base_s)
        cap = float(self.params.backoff_max_s)
        return random.uniform(0, min(cap, base * 2**retry))

    def _retry_after_cap(self) -> float:
        return float(self.params.retry_after_max_s)

    async def _attempt(
        self, body: dict[str, Any], attempts: _Attempts, url: str | None = None
    ) -> ChatResponse:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                if url is not None:
                    raw = await self._post(body, attempts, url)
                    return ChatResponse(text=None, extra={"raw": raw})
                if self.stream:
                    data, ttft = await self._post_stream(body, started, attempts)
                else:
                    data, ttft = await self._post(body, attempts), None
        except TimeoutError:  # asyncio's and aiohttp's timeouts are both TimeoutError
            raise _Retryable(f"timed out after {self.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:  # refused, reset, dropped mid-body, bad framing
            detail = self._scrub(str(exc)) or "no detail"
            raise _Retryable(f"connection error ({type(exc).__name__}: {detail})") from None
        timing = {"attempt_s": round(time.perf_counter() - started, 6)}
        if ttft is not None:
            timing["ttft_s"] = round(ttft, 6)
        return to_response(data, timing, attempts.retries)

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        """The body, refused (and retried) once it passes ``max_response_mb``."""
        limit = int(self.params.max_response_mb * 1024 * 1024)
        chunks, size = [], 0
        async for chunk in response.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise _Retryable(f"response larger than {self.params.max_response_mb:g} MiB")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _post(
        self, body: dict[str, Any], attempts: _Attempts, url: str | None = None
    ) -> dict[str, Any]:
        async with self._client.post(url or self.url, json=body) as response:
            content = await self._read(response)
        self._check_status(response, content, attempts)
        return self._parse_json(content, response.status, chat=url is None)

    async def _post_stream(
        self, body: dict[str, Any], started: float, attempts: _Attempts
    ) -> tuple[dict[str, Any], float | None]:
        payload = {**body, "stream": True, "stream_options": {"include_usage": True}}
        async with self._client.post(self.url, json=payload) as response:
            if response.status >= 300:
                self._check_status(response, await self._read(response), attempts)
            if "text/event-stream" not in response.headers.get("Content-Type", ""):
                return self._parse_json(await self._read(response), response.status), None
            return await self._read_events(response, started)

    async def _read_events(
        self, response: aiohttp.ClientResponse, started: float
    ) -> tuple[dict[str, Any], float | None]:
        stream = _StreamState()
        limit, size = self.params.max_response_mb * 1024 * 1024, 0
        async for raw in response.content:
            size += len(raw)
            if size > limit:
                raise _Retryable(f"response larger than {self.params.max_response_mb:g} MiB")
            line = raw.decode("utf-8", errors="replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                stream.done = True
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError:
                raise _Retryable("malformed JSON in a server-sent event") from None
            if stream.add(chunk) and stream.ttft is None:
                stream.ttft = time.perf_counter() - started
        if not stream.done and stream.finish_reason is None:
            raise _Retryable("the event stream ended before the answer did")
        return stream.as_response(), stream.ttft

    # --- answers ----------------------------------------------------------------------------

    def _check_status(
        self, response: aiohttp.ClientResponse, content: bytes, attempts: _Attempts
    ) -> None:
        status = response.status
        if status < 300:
            return
        message = self._scrub(_server_message(content, response.reason or ""))
        if status in RETRY_STATUS or status >= 500:
            retry_after = _retry_after(response.headers)
            raise _Retryable(f"HTTP {status}: {message}", retry_after, status)
        raise OpenAIAPIError(
            f"HTTP {status} from {self.url}: {message} (not retried)",
            retries=attempts.retries,
            status=status,
        )

    def _parse_json(self, content: bytes, status: int, chat: bool = True) -> dict[str, Any]:
        try:
            data = json.loads(content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Retryable(
                f"malformed JSON in the HTTP {status} answer ({len(content)} bytes)"
            ) from None
        problem = _shape_problem(data) if chat else None
        if problem:
            raise _Retryable(f"unexpected answer from the server: {self._scrub(problem)}")
        return data

    def _scrub(self, text: str) -> str:
        """The text with the API key replaced by ``***`` (servers may echo it back)."""
        if self._secret and len(self._secret) >= 4:
            return text.replace(self._secret, "***")
        return text


# --- pure helpers -----------------------------------------------------------------------------


def prompt_loglikelihood(data: Any, context_chars: int) -> tuple[float, bool]:
    """Sum the prompt tokens that start at or after ``context_chars`` (all scored tokens when
    the context is empty) from an OpenAI legacy ``logprobs`` object; greedy when each token's
    log-probability is its position's best."""
    try:
        logprobs = data["choices"][0]["logprobs"]
        rows = zip(
            logprobs["token_logprobs"],
            logprobs["text_offset"],
            logprobs.get("top_logprobs") or [None] * len(logprobs["token_logprobs"]),
            strict=True,
        )
        picked = [
            (float(lp), top)
            for lp, offset, top in rows
            if lp is not None and (offset >= context_chars or context_chars == 0)
        ]
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise OpenAIAPIError(
            f"no prompt log-probabilities in the server's answer ({type(exc).__name__}: {exc}); "
            "does it support echo with logprobs on /completions? (else set logprobs: false)"
        ) from None
    if not picked:
        raise OpenAIAPIError("the server scored no token of the continuation")
    greedy = all(not top or lp >= max(top.values()) - 1e-6 for lp, top in picked)
    return math.fsum(lp for lp, _ in picked), greedy


def _endpoint(base_url: str) -> str:
    url = base_url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://, not {url[:40]!r}")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _tool_fields(request: ChatRequest) -> dict[str, Any]:
    """``prompt``: none; ``native`` or no mode: the tools and the requested choice;
    ``constrained``: the tools with a call required (or the named function)."""
    if request.mode == "prompt" or not request.tools:
        return {}
    out: dict[str, Any] = {"tools": list(request.tools)}
    choice = request.tool_choice
    if request.mode == "constrained" and not isinstance(choice, dict):
        choice = "required"
    if choice is not None:
        out["tool_choice"] = choice
    return out


def wire_messages(messages: tuple[Message, ...]) -> list[dict[str, Any]]:
    """Messages in OpenAI's wire shape: assistant calls get ids and JSON-string arguments, and
    a tool message without ``tool_call_id`` answers the earliest unanswered call."""
    out: list[dict[str, Any]] = []
    unanswered: list[str] = []
    for turn, message in enumerate(messages):
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            ids = [f"call_{turn}_{i}" for i in range(len(message.tool_calls))]
            item["tool_calls"] = [
                c.to_openai(i) for i, c in zip(ids, message.tool_calls, strict=True)
            ]
            unanswered = ids
        if message.role == "tool":
            call_id = message.tool_call_id or (unanswered[0] if unanswered else None)
            if call_id in unanswered:
                unanswered.remove(call_id)
            if call_id is not None:
                item["tool_call_id"] = call_id
        if message.name is not None:
            item["name"] = message.name
        out.append(item)
    return out


def _server_message(content: bytes, reason: str) -> str:
    """The ``error.message`` of an OpenAI-style error body, else the start of the body."""
    try:
        data = json.loads(content)
    except ValueError:
        return content.decode("utf-8", errors="replace").strip()[:300] or reason
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:300]
    if isinstance(error, str):
        return error[:300]
    return json.dumps(data)[:300]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date from now."""
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _shape_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return "no choices" + (f" ({str(data.get('error'))[:200]})" if data.get("error") else "")
    if not isinstance(choices[0].get("message"), dict):
        return "choices[0] has no message"
    return None


def to_response(data: dict[str, Any], timing: dict[str, float], retries: int) -> ChatResponse:
    """An OpenAI chat-completion object as a :class:`ChatResponse`. A malformed tool call is
    the model's answer, not a transport failure: it goes to ``extra["tool_call_error"]``."""
    choice = data["choices"][0]
    message = choice["message"]
    usage = data.get("usage") or {}
    extra: dict[str, Any] = {"retries": retries}
    calls, ids, error = _parse_calls(message.get("tool_calls"))
    if error:
        extra["tool_call_error"] = error
        extra["raw_tool_calls"] = message.get("tool_calls")
    if ids:
        extra["tool_call_ids"] = ids
    return ChatResponse(
        text=message.get("content"),
        tool_calls=calls,
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        finish_reason=choice.get("finish_reason"),
        timing=timing,
        extra=extra,
    )


def _parse_calls(raw: Any) -> tuple[tuple[ToolCall, ...] | None, list[str], str | None]:
    if not raw:
        return None, [], None
    calls, ids = [], []
    try:
        for item in raw:
            calls.append(ToolCall.from_openai({"function": item.get("function") or {}}))
            ids.append(str(item.get("id") or ""))
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        return None, [], f"{type(exc).__name__}: {exc}"
    return tuple(calls), ids, None


def _as_cached(hit: ChatResponse, lookup_s: float) -> ChatResponse:
    """A cache hit: marked, with no retries, timed as the look-up it was (the original
    request's timing is kept under ``extra["cached_timing"]``)."""
    extra = {**hit.extra, "cached": True, "cached_timing": dict(hit.timing)}
    return replace(hit, timing={"total_s": round(lookup_s, 6)}, extra=extra)


class _StreamState:
    """Accumulates chat-completion chunks into the shape of a non-streamed answer."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.ttft: float | None = None
        self.done = False
        self.saw_choice = False

    def add(self, chunk: dict[str, Any]) -> bool:
        """Take one chunk; True when it carried generated content (text or a call)."""
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        produced = False
        for choice in chunk.get("choices") or []:
            self.saw_choice = True
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self.text.append(delta["content"])
                produced = True
            for call in delta.get("tool_calls") or []:
                self._add_call(call)
                produced = True
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return produced

    def _add_call(self, delta: dict[str, Any]) -> None:
        slot = self.calls.setdefault(
            int(delta.get("index", len(self.calls))),
            {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if delta.get("id"):
            slot["id"] = delta["id"]
        function = delta.get("function") or {}
        slot["function"]["name"] += function.get("name") or ""
        slot["function"]["arguments"] += function.get("arguments") or ""

    def as_response(self) -> dict[str, Any]:
        if not self.saw_choice:
            raise _Retryable("the event stream carried no choices")
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.text) or None}
        if self.calls:
            message["tool_calls"] = [self.calls[i] for i in sorted(self.calls)]
        choice = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        return {"choices": [choice], "usage": self.usage}
