"""The ``onnx`` backend: a causal LM on ONNX Runtime with our KV-cache loop (``_decode.py``),
the model folder's own tokenizer and chat template, and the timings every local backend
reports (docs/efficiency.md).

Tool-call modes:

- ``prompt``: the task describes the tools in the messages; the answer is text;
- ``native``: a template that renders ``tools`` gets them (answers are read from
  ``<tool_call>`` tags); otherwise the tools are listed in the system message and the answer is
  read as a JSON array of calls, as the ``llamacpp`` backend does for such templates;
- ``constrained``: decoding is forced onto the JSON Schema of a call list over the offered
  tools (``[]`` allowed) by onnxruntime-genai's guidance (llguidance, built into its wheel),
  on the same model files. Without onnxruntime-genai the backend does not offer the mode.
"""

from __future__ import annotations

import importlib.util
import json
import os
import threading
import time
from typing import Any

from harness_plugins.shared import scoring
from harness_plugins.shared import tool_calls as tools_lib
from harness_plugins.shared.generation import Generation
from harness_plugins.shared.generation import seed
from harness_plugins.shared.memory import peak_rss_mb
from harness_plugins.shared.models import file_sha256

from harness import Backend
from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import Message

from . import OnnxParams
from ._decode import KVDecoder
from ._decode import sampler
from ._model import load_tokenizer
from ._model import locate
from ._model import make_session
from ._template import ChatTemplate

WARMUP = (Message(role="user", content="Say hello."),)


class OnnxBackend(Backend):
    """One model, one request at a time (a lock guards the session's use)."""

    max_concurrency = 1
    params: OnnxParams

    def __init__(self, params: OnnxParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self._lock = threading.Lock()
        self.model = locate(params.model, context.base_dir, params.file)
        self.threads = params.threads or os.cpu_count() or 1
        started = time.perf_counter()
        self.tokenizer = load_tokenizer(self.model)
        self.session = make_session(self.model, self.threads, params.spinning, params.provider)
        self.decoder: KVDecoder | None = KVDecoder(self.session)
        settings = self.model.settings()
        self.template = ChatTemplate(settings, self.tokenizer)
        self.max_positions = int(settings.get("max_position_embeddings") or 1 << 30)
        self.capabilities = params.capabilities()
        self.engine = _engine(params.engine)
        self._genai: Any = None
        self._layer_model: tuple[Any, Any] | None = None
        if self.engine == "genai":
            self._genai_model()
        if self.engine == "genai":  # one copy of the weights in memory: ours comes back lazily
            self.session = self.decoder = None
        self.load_s = time.perf_counter() - started
        self.warmup_s = self._warm_up(params.warmup)

    def _warm_up(self, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            self._generate(list(WARMUP), None, {"max_tokens": 8})
        return time.perf_counter() - started

    # --- the Backend interface --------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatResponse:
        with self._lock:
            tools = list(request.tools or [])
            if request.mode == "constrained" and tools and request.tool_choice != "none":
                return self._constrained(request, tools)
            if request.mode == "native" and tools:
                return self._native(request, tools)
            return self._generate(list(request.messages), request).response()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of raw ``text`` (no template, no special tokens added)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def logprobs(self, text: str) -> tuple[list[int], Any]:
        """Teacher forcing over raw ``text`` (no template): its token ids and, for every token
        after the first, the log-probabilities over the vocabulary that predicted it."""
        import numpy as np

        with self._lock:
            ids = self.tokenize(text)
            self._check_context(len(ids), 0)
            logits = self._loop().logits(ids)[:-1].astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        return ids, logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        """The continuation's log-probability after the context, and whether it is greedy
        (harness_plugins.shared.scoring's rule, lm-eval's)."""
        return scoring.loglikelihood(self, context, continuation)

    def layer_model(self) -> tuple[Any, Any]:
        """The graph with its block boundaries read out and overridable, and the folder's
        tokenizer, for the ``layerwise`` task (``layers`` capability). A second session over
        the rewritten graph, made on first use."""
        if self._layer_model is None:
            from harness_plugins.layerwise import onnx_layer_model

            settings = self.model.settings()
            self._layer_model = onnx_layer_model(
                self.model.model_file, self.tokenizer, settings, self.threads
            )
        return self._layer_model

    def info(self) -> dict[str, Any]:
        import onnxruntime

        return {
            "runtime": "onnxruntime",
            "runtime_version": onnxruntime.__version__,
            "engine": self.engine,
            "model_path": str(self.model.model_file),
            "model_format": self.model.model_file.suffix.lstrip("."),
            "model_sha256": file_sha256(self.model.model_file),
            "model_size_bytes": self.model.model_file.stat().st_size,
            "model_card": self.model.card or None,
            "tokenizer_sha256": file_sha256(self.model.tokenizer_file),
            "chat_template_source": self.template.source,
            "threads": self.threads,
            "provider": self.params.provider,
            "load_s": round(self.load_s, 6),
            "warmup": self.params.warmup,
            "warmup_s": round(self.warmup_s, 6),
            "peak_rss_mb_after_load": round(peak_rss_mb(), 1),
        }

    def close(self) -> None:
        self.session = self.decoder = self._genai = None

    # --- generation -------------------------------------------------------------------------

    def _generate(
        self,
        messages: list[Message],
        request: ChatRequest | None,
        overrides: dict[str, Any] | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Generation:
        settings = self._settings(request) | (overrides or {})
        prompt = self.template.encode(messages, tools)
        self._check_context(len(prompt), settings["max_tokens"])
        cpu0 = time.process_time()
        out = self._tokens(prompt, settings | {"seed": self._seed(request)})
        return self._generation(prompt, out.ids, out, cpu0)

    def _tokens(
        self, prompt: list[int], settings: dict[str, Any], schema: str | None = None
    ) -> Any:
        """Generate with the engine (onnxruntime-genai, or our loop); a schema needs genai."""
        stops, max_new = self.template.stop_ids, settings["max_tokens"]
        if self.engine == "genai" or schema is not None:
            from ._genai import generate

            return generate(self._genai_model(), prompt, max_new, stops, settings, schema)
        temperature, top_p, top_k = settings["temperature"], settings["top_p"], settings["top_k"]
        pick = sampler(temperature, top_p, top_k, settings["seed"])
        return self._loop().generate(prompt, max_new, pick, stops)

    def _loop(self) -> KVDecoder:
        """Our KV-cache loop over an ONNX Runtime session (made on first use with genai)."""
        if self.decoder is None:
            params = self.params
            self.session = make_session(self.model, self.threads, params.spinning, params.provider)
            self.decoder = KVDecoder(self.session)
        return self.decoder

    def _genai_model(self) -> Any:
        if self._genai is None:
            from ._genai import GenaiModel

            stops, n_ctx = self.template.stop_ids, self.params.n_ctx
            self._genai = GenaiModel(self.model, self._loop(), self.threads, n_ctx, stops)
        return self._genai

    def _generation(self, prompt: list[int], ids: list[int], out: Any, cpu0: float) -> Generation:
        return Generation(
            text=self.tokenizer.decode(ids, skip_special_tokens=True),
            input_tokens=len(prompt),
            output_tokens=len(ids),
            cached_tokens=0,
            finish_reason=out.finish_reason,
            started=out.started,
            first_token=out.first_token,
            ended=out.ended,
            cpu_s=time.process_time() - cpu0,
            decode_steps=max(len(ids) - 1 + (out.finish_reason == "stop"), 0),
            engine={},
        )

    def _settings(self, request: ChatRequest | None) -> dict[str, Any]:
        gp = request.params if request else None
        extra = gp.extra if gp else {}

        def pick(name: str, given: Any) -> Any:
            return given if given is not None else extra.get(name, getattr(self.params, name))

        return {
            "max_tokens": int(pick("max_tokens", gp.max_tokens if gp else None)),
            "temperature": float(pick("temperature", gp.temperature if gp else None)),
            "top_p": float(pick("top_p", gp.top_p if gp else None)),
            "top_k": int(pick("top_k", None)),
        }

    def _seed(self, request: ChatRequest | None) -> int:
        return seed(self.params, self.context, request)

    def _check_context(self, prompt_tokens: int, max_tokens: int) -> None:
        """Refuse what would overflow ``n_ctx`` or the model's positions (a crash inside ONNX
        Runtime otherwise)."""
        limit = min(self.params.n_ctx, self.max_positions)
        if prompt_tokens + max_tokens > limit:
            raise ValueError(
                f"prompt of {prompt_tokens} tokens + max_tokens {max_tokens} exceed the context "
                f"of {limit} (n_ctx {self.params.n_ctx}, model {self.max_positions}); lower "
                "max_tokens or shorten the prompt"
            )

    # --- tools ------------------------------------------------------------------------------

    def _native(self, request: ChatRequest, tools: list[dict[str, Any]]) -> ChatResponse:
        if self.template.renders_tools:
            openai_tools = [tools_lib.openai_tool(t) for t in tools]
            gen = self._generate(list(request.messages), request, tools=openai_tools)
            return gen.response(tool_calls=tools_lib.parse_tagged_calls(gen.text))
        messages = tools_lib.tool_messages(request.messages, tools, None)
        gen = self._generate(messages, request)
        calls, error = tools_lib.parse_calls(gen.text)
        return gen.response(
            tool_calls=calls or None, extra={"tool_call_error": error} if error else {}
        )

    def _constrained(self, request: ChatRequest, tools: list[dict[str, Any]]) -> ChatResponse:
        if "constrained" not in self.capabilities:
            raise ValueError(
                "constrained mode on the onnx backend needs onnxruntime-genai: "
                "pip install onnxruntime-genai (part of the onnx extra)"
            )
        max_calls = request.params.extra.get("max_calls", self.params.max_calls)
        schema = closed(tools_lib.calls_schema(tools, request.tool_choice, max_calls))
        schema["x-guidance"] = {"whitespace_flexible": False}  # compact JSON: no endless blanks
        messages = tools_lib.tool_messages(request.messages, tools, None)
        gen = self._guided(messages, request, json.dumps(schema))
        calls, error = tools_lib.parse_calls(gen.text)
        return gen.response(tool_calls=calls, extra={"tool_call_error": error} if error else {})

    def _guided(self, messages: list[Message], request: ChatRequest, schema: str) -> Generation:
        settings = self._settings(request) | {"temperature": 0.0, "seed": 0}  # greedy, forced
        prompt = self.template.encode(messages, None)
        self._check_context(len(prompt), settings["max_tokens"])
        cpu0 = time.process_time()
        out = self._tokens(prompt, settings, schema)
        return self._generation(prompt, out.ids, out, cpu0)


def closed(schema: Any) -> Any:
    """``schema`` with every object that lists its properties closed to others, as llama.cpp's
    grammar converter reads a schema (JSON Schema itself allows extra keys by default, and a
    small model then fills arguments with invented ones)."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _closed_value(key, value) for key, value in schema.items()}
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _closed_value(key: str, value: Any) -> Any:
    if key in ("const", "enum", "default", "examples"):  # values, not schemas
        return value
    if key == "properties" and isinstance(value, dict):  # names -> schemas
        return {name: closed(sub) for name, sub in value.items()}
    return closed(value)


def _engine(asked: str) -> str:
    """``auto``: onnxruntime-genai's generator when installed (its loop binds the cache in
    place: 10-20 % faster than ours), else our loop."""
    if asked != "auto":
        return asked
    return "genai" if importlib.util.find_spec("onnxruntime_genai") else "loop"
