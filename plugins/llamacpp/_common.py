"""What the two engines of the ``llamacpp`` backend share: the measured generation and its
timings (docs/efficiency.md), messages as templates want them, sampling settings and seeds,
and the system text that lists tools for templates that cannot render them."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

from harness_plugins.shared import tool_calls as tools_lib
from harness_plugins.shared.generation import Generation  # noqa: F401 (the engines use it)
from harness_plugins.shared.generation import seed  # noqa: F401 (used as common.seed)
from harness_plugins.shared.memory import peak_rss_mb
from harness_plugins.shared.models import ResolvedModel
from harness_plugins.shared.models import resolve_model
from harness_plugins.shared.tool_calls import message_dict  # noqa: F401 (used as common.message_dict)
from harness_plugins.shared.tool_calls import openai_tool  # noqa: F401 (used as common.openai_tool)
from harness_plugins.shared.tool_calls import tool_messages  # noqa: F401

from harness import Backend
from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import Message

from . import ENGINE_CAPABILITIES
from . import LlamaCppParams

WARMUP_MESSAGES = (Message(role="user", content="Say hello."),)
WARMUP_TOKENS = 8
ANY_VALUE = {"type": ["string", "number", "boolean", "object", "array", "null"]}


class EngineBackend(Backend):
    """What both engines' backends are: one model, one request at a time (a lock guards the
    context), the model resolved from a card or a path and its hash checked."""

    capabilities = ENGINE_CAPABILITIES
    max_concurrency = 1
    params: LlamaCppParams
    load_s = warmup_s = 0.0

    def __init__(self, params: LlamaCppParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self._lock = threading.Lock()
        self.model: ResolvedModel = resolve_model(params.model, context.base_dir, params.sha256)
        self.n_threads = params.n_threads or os.cpu_count() or 1
        self.n_threads_batch = params.n_threads_batch or self.n_threads

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Dispatch by mode (see the module docs of each engine)."""
        with self._lock:
            started = time.perf_counter()
            tools = list(request.tools or [])
            if request.mode == "constrained" and tools and request.tool_choice != "none":
                return self._constrained(request, tools, started)
            if request.mode == "native" and tools:
                return self._native(request, tools, started)
            return self._plain(request, started)

    def _plain(self, request: ChatRequest, started: float) -> ChatResponse:
        raise NotImplementedError

    def _constrained(
        self, request: ChatRequest, tools: list[dict[str, Any]], started: float
    ) -> ChatResponse:
        raise NotImplementedError

    def _native(
        self, request: ChatRequest, tools: list[dict[str, Any]], started: float
    ) -> ChatResponse:
        raise NotImplementedError

    def shared_info(self) -> dict[str, Any]:
        """Provenance both engines report (the engine adds its name, version and build)."""
        return {
            "model_path": str(self.model.path),
            "model_source": self.model.source,
            "model_sha256": self.model.sha256,
            "model_size_bytes": self.model.path.stat().st_size,
            "model_card": self.model.card or None,
            "n_batch": self.params.n_batch,
            "n_threads": self.n_threads,
            "n_threads_batch": self.n_threads_batch,
            "n_gpu_layers": self.params.n_gpu_layers,
            "prompt_cache": self.params.prompt_cache,
            "load_s": round(self.load_s, 6),
            "warmup": self.params.warmup,
            "warmup_s": round(self.warmup_s, 6),
            "peak_rss_mb_after_load": round(peak_rss_mb(), 1),
        }


def sampling(params: LlamaCppParams, request: ChatRequest | None) -> dict[str, Any]:
    """llama.cpp sampling settings: the request's, else the backend's parameters."""
    gp = request.params if request else None
    extra = gp.extra if gp else {}

    def pick(name: str, given: Any) -> Any:
        return given if given is not None else extra.get(name, getattr(params, name))

    return {
        "max_tokens": pick("max_tokens", gp.max_tokens if gp else None),
        "temp": float(pick("temperature", gp.temperature if gp else None)),
        "top_p": float(pick("top_p", gp.top_p if gp else None)),
        "top_k": int(pick("top_k", None)),
        "min_p": float(pick("min_p", None)),
        "repeat_penalty": float(pick("repeat_penalty", None)),
        "stop": list(gp.stop) if gp else [],
    }


def calls_schema(tools: list[dict[str, Any]], tool_choice: Any, max_calls: int, ok: Any) -> Any:
    """The JSON Schema a constrained answer must match: the tools' argument schemas as the
    grammar will enforce them (``ok(schema)`` says whether the engine accepts one: as given,
    else with each refused property opened to any JSON value, else any JSON object)."""
    arguments = {tools_lib.tool_function(t)["name"]: _grammar_arguments(t, ok) for t in tools}
    return tools_lib.calls_schema(tools, tool_choice, max_calls, arguments=arguments)


def _grammar_arguments(tool: dict[str, Any], ok: Any) -> dict[str, Any]:
    schema: dict[str, Any] = tools_lib.grammar_friendly(tools_lib.parameters_schema(tool))
    if ok(schema):
        return schema
    properties = schema.get("properties")
    if isinstance(properties, dict):
        opened = {k: v if ok(v) else ANY_VALUE for k, v in properties.items()}
        schema = {**schema, "properties": opened}
        if ok(schema):
            return schema
    return {"type": "object"}


def call_arguments(raw: str | dict[str, Any]) -> dict[str, Any]:
    """A generated call's arguments as a dict; text that is not a JSON object is kept under
    ``_raw`` (or ``_value``) so that the checker sees what the model wrote."""
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw.strip() else {}
    except json.JSONDecodeError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"_value": value}
