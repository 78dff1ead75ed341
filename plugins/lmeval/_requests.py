"""lm-eval's three request types answered by a harness backend: the one place both
directions (``HarnessLM`` inside lm-eval, the ``lmeval`` task inside a manifest) go through,
so a score is the same whichever side asks.

- ``generate_until``: the context as raw text through ``Backend.complete`` when the backend
  has the ``complete`` capability (lm-eval's prompt is already formatted), else as one user
  message through ``Backend.chat``; ``until`` strings are stop strings and the answer is cut
  at the first one; ``max_gen_toks``, ``temperature`` and ``top_p`` are passed on;
- ``loglikelihood``: ``Backend.loglikelihood(context, continuation)``;
- ``loglikelihood_rolling``: ``Backend.loglikelihood("", text)``, the whole text's
  log-probability (every token but the first; one window: the text must fit the context).
"""

from __future__ import annotations

from typing import Any

from harness import ChatRequest
from harness import ChatResponse
from harness import GenerationParams
from harness import Message

SCORING = ("loglikelihood", "loglikelihood_rolling")


def answer(
    backend: Any, request_type: str, args: tuple[Any, ...]
) -> tuple[Any, ChatResponse | None]:
    """lm-eval's answer to one request (text, ``(logprob, greedy)`` or a logprob) and the
    backend's response when there is one (generation: its tokens and timings)."""
    if request_type == "generate_until":
        context, kwargs = args[0], (args[1] if len(args) > 1 else {}) or {}
        until = [u for u in _as_list(kwargs.get("until")) if u]
        response = generate(backend, context, kwargs, until)
        return cut(response.text or "", until), response
    if request_type in SCORING:
        need_scoring(backend)
        if request_type == "loglikelihood":
            total, greedy = backend.loglikelihood(args[0], args[1])
            return (float(total), bool(greedy)), None
        return float(backend.loglikelihood("", args[0])[0]), None
    raise ValueError(f"lm-eval request type {request_type!r} is not one harness answers")


def generate(backend: Any, context: str, kwargs: dict[str, Any], until: list[str]) -> ChatResponse:
    params = GenerationParams(
        max_tokens=kwargs.get("max_gen_toks"),
        temperature=float(kwargs.get("temperature", 0.0) or 0.0),
        top_p=kwargs.get("top_p"),
        stop=tuple(until),
    )
    if "complete" in getattr(backend, "capabilities", ()):
        return backend.complete(context, ChatRequest(messages=(), params=params))  # type: ignore[no-any-return]
    request = ChatRequest(messages=(Message("user", context),), params=params)
    return backend.chat(request)  # type: ignore[no-any-return]


def need_scoring(backend: Any) -> None:
    if "loglikelihood" not in getattr(backend, "capabilities", ()):
        raise ValueError(
            f"backend {type(backend).__name__} gives no log-likelihoods, which this lm-eval "
            "request needs; use llamacpp with engine: llama-cpp-python, onnx, or openai with "
            "logprobs: true"
        )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def cut(text: str, until: list[str]) -> str:
    """The text up to the first stop string (lm-eval's ``until`` semantics)."""
    for stop in until:
        index = text.find(stop)
        if index != -1:
            text = text[:index]
    return text
