"""The ``llamacpp`` backend on xllamacpp: llama.cpp's own server code in this process, from a
prebuilt wheel (no compiler on the user's path).

Same modes, timings and answers as the llama-cpp-python engine (``_backend.py``):

- prompts are rendered by the server from the GGUF's chat template and tokenized as
  llama-cpp-python does (same token ids);
- flash attention is off and the prompt cache is not reused, as llama-cpp-python runs by
  default, so greedy answers match token for token (flash attention changes the numerics
  enough to flip greedy choices of a 135M model);
- constrained mode sends the very GBNF grammar llama-cpp-python builds (``_gbnf.py``), not
  xllamacpp's ``json_schema`` route (LLGuidance, which lets the model place whitespace
  differently);
- native mode on a template without tools runs llama-cpp-python's ``chatml-function-calling``
  recipe (``_function_calling.py``): the server ignores ``tools`` for such templates.

The wheel is built for AVX2, FMA, F16C and BMI2 and has no run-time dispatch: on a CPU without
them the first llama.cpp call dies with SIGILL, which Python cannot catch, so the flags are
checked before the engine is touched. The server's embedded HTTP listener (always started, on
a random loopback port) is locked with a random key: in-process calls do not need it.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.request
from pathlib import Path
from typing import Any

from harness_plugins.shared import tool_calls as tools_lib

from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import HarnessError
from harness import InputError
from harness import Message

from . import LlamaCppParams
from . import _common as common
from ._common import WARMUP_MESSAGES
from ._common import WARMUP_TOKENS
from ._common import Generation
from ._gbnf import json_schema_to_gbnf

CPU_FLAGS = ("avx2", "fma", "f16c", "bmi2")


def cpu_problem(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """Why this CPU cannot run the wheel (missing instruction sets), or None."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None  # not Linux: nothing to read, let llama.cpp try
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        None,
    )
    if flags is None:
        return None
    missing = [f for f in CPU_FLAGS if f not in flags]
    if not missing:
        return None
    return (
        f"this CPU lacks {', '.join(missing).upper()}, which the xllamacpp wheel needs; use "
        "engine: llama-cpp-python (built from source for this machine)"
    )


class XLlamaCppBackend(common.EngineBackend):
    """One llama.cpp server slot in this process; requests are served one at a time."""

    def __init__(self, params: LlamaCppParams, context: BuildContext) -> None:
        problem = cpu_problem()
        if problem:
            raise HarnessError(problem)
        super().__init__(params, context)
        import xllamacpp

        self.xlc = xllamacpp
        self._grammars: dict[str, str] = {}
        self.server, self.load_s = self._load()
        self.template = str(self._props().get("chat_template") or "")
        self.template_has_tools = "tools" in self.template
        # at least one request: deleting a server that never served can hang (xllamacpp)
        self.warmup_s = self._warm_up(max(1, params.warmup))

    # --- set-up -----------------------------------------------------------------------------

    def _load(self) -> tuple[Any, float]:
        p, xlc = self.params, self.xlc
        cp = xlc.CommonParams()
        cp.model.path = str(self.model.path)
        cp.n_ctx = p.n_ctx
        cp.n_batch = p.n_batch
        cp.n_parallel = 1
        cp.n_gpu_layers = p.n_gpu_layers
        cp.cpuparams.n_threads = self.n_threads
        cp.cpuparams_batch.n_threads = self.n_threads_batch
        cp.flash_attn_type = xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
        cp.warmup = False
        cp.verbosity = -1
        if not p.prompt_cache:  # the server would keep every prompt's KV state in RAM (8 GiB)
            cp.cache_ram_mib = 0
        cp.api_keys = [secrets.token_hex(16)]
        if p.chat_format:
            cp.chat_template = p.chat_format
        started = time.perf_counter()
        try:
            server = xlc.Server(cp)
        except Exception as exc:
            raise InputError(
                f"model file {self.model.path}: llama.cpp could not load it ({exc}); "
                "check that it is a GGUF file"
            ) from None
        self._key = cp.api_keys[0]
        return server, time.perf_counter() - started

    def _props(self) -> dict[str, Any]:
        """The server's ``/props`` (its chat template), from its loopback listener."""
        request = urllib.request.Request(
            f"{self.server.listening_address}/props",
            headers={"Authorization": f"Bearer {self._key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                data: dict[str, Any] = json.load(response)
                return data
        except OSError:
            return {}

    def _warm_up(self, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            body = self._body(None, list(WARMUP_MESSAGES), {"max_tokens": WARMUP_TOKENS})
            self._generate(body, time.perf_counter())
        return time.perf_counter() - started

    # --- the Backend interface --------------------------------------------------------------

    def _plain(self, request: ChatRequest, started: float) -> ChatResponse:
        return self._generate(self._body(request, list(request.messages)), started).response()

    def complete(self, prompt: str, request: ChatRequest) -> ChatResponse:
        """Raw text completion: no chat template."""
        with self._lock:
            started = time.perf_counter()
            body = self._body(request, None) | {"prompt": prompt}
            return self._generate(body, started, endpoint="completions").response()

    def info(self) -> dict[str, Any]:
        return {
            "runtime": "xllamacpp",
            "runtime_version": self.xlc.__version__,
            "system_info": str(self.xlc.get_system_info()).strip(),
            **self.shared_info(),
            "chat_template_source": self.params.chat_format or "gguf:tokenizer.chat_template",
            "template_renders_tools": self.template_has_tools,
            "n_ctx": self.params.n_ctx,
            "flash_attention": False,
        }

    def close(self) -> None:
        with self._lock:
            server, self.server = self.server, None
        del server  # the server has no close(): dropping it stops its threads

    # --- requests ---------------------------------------------------------------------------

    def _body(
        self,
        request: ChatRequest | None,
        messages: list[Message] | None,
        overrides: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Every sampling field spelled out: one left out takes the server's default (a
        temperature of 0.8, a random seed, no token limit)."""
        s = common.sampling(self.params, request) | (overrides or {})
        body: dict[str, Any] = {
            "max_tokens": s["max_tokens"],
            "temperature": s["temp"],
            "top_p": s["top_p"],
            "top_k": s["top_k"],
            "min_p": s["min_p"],
            "repeat_penalty": s["repeat_penalty"],
            "seed": common.seed(self.params, self.context, request),
            "cache_prompt": bool(self.params.prompt_cache),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if s["stop"]:
            body["stop"] = s["stop"]
        if messages is not None:
            body["messages"] = [common.message_dict(m) for m in messages]
        return body

    def _generate(self, body: dict[str, Any], started: float, endpoint: str = "chat") -> Generation:
        """Stream one answer, reading the clock at the first token."""
        chunks: list[dict[str, Any]] = []
        first: list[float] = []

        def on_chunk(chunk: Any) -> None:
            if isinstance(chunk, str | bytes):
                chunk = json.loads(chunk)
            if not first and _has_text(chunk):
                first.append(time.perf_counter())
            chunks.append(chunk)

        handle = (
            self.server.handle_chat_completions
            if endpoint == "chat"
            else self.server.handle_completions
        )
        cpu0 = time.process_time()
        try:
            handle(body, on_chunk)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"llama.cpp refused the request: {exc}") from None
        ended = time.perf_counter()
        first_token = first[0] if first else None
        return _generation(chunks, started, first_token, ended, cpu0, bool(body.get("stop")))

    # --- tools ------------------------------------------------------------------------------

    def _constrained(self, request: ChatRequest, tools: list[dict], started: float) -> ChatResponse:
        """Grammar-forced JSON array of calls over the offered tools, or ``[]``."""
        max_calls = request.params.extra.get("max_calls", self.params.max_calls)
        grammar = self._calls_grammar(tools, request.tool_choice, max_calls)
        if self.template_has_tools:
            body = self._with_tools(request, tools)
        else:
            messages = common.tool_messages(request.messages, tools, self.params.tool_prompt)
            body = self._body(request, messages)
        gen = self._generate(body | {"grammar": grammar}, started)
        calls, error = tools_lib.parse_calls(gen.text)
        extra = {"tool_call_error": error} if error else {}
        return gen.response(tool_calls=calls, extra=extra)

    def _with_tools(self, request: ChatRequest, tools: list[dict]) -> dict[str, Any]:
        """A request body for a template that renders the tools itself."""
        body = self._body(request, list(request.messages))
        return body | {"tools": [common.openai_tool(t) for t in tools]}

    def _calls_grammar(self, tools: list[dict], tool_choice: Any, max_calls: int) -> str:
        key = json.dumps([tools, tool_choice, max_calls], sort_keys=True, default=str)
        if key not in self._grammars:
            schema = common.calls_schema(tools, tool_choice, max_calls, _converts)
            self._grammars[key] = json_schema_to_gbnf(json.dumps(schema))
        return self._grammars[key]

    def _native(self, request: ChatRequest, tools: list[dict], started: float) -> ChatResponse:
        """Tools through the template when it renders them, else the ``chatml-function-calling``
        recipe (the server ignores ``tools`` for templates without them)."""
        if self.template_has_tools:
            body = self._with_tools(request, tools)
            gen = self._generate(body, started)
            return gen.response(tool_calls=tools_lib.parse_tagged_calls(gen.text))
        from ._function_calling import function_calling

        return function_calling(self, request, tools, started)


def _converts(schema: dict[str, Any]) -> bool:
    """Whether the vendored converter turns ``schema`` into a grammar."""
    try:
        json_schema_to_gbnf(json.dumps(schema))
    except Exception:  # the converter asserts and raises on schemas it cannot handle
        return False
    return True


def _has_text(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        if delta.get("content") or choice.get("text"):
            return True
    return False


def _generation(
    chunks: list[dict[str, Any]],
    started: float,
    first: float | None,
    ended: float,
    cpu0: float,
    stops: bool,
) -> Generation:
    """One answer from its streamed chunks: text, finish reason, the server's token counts
    and clocks. ``output_tokens`` leaves out the end-of-generation token, as the
    llama-cpp-python engine counts."""
    error = next((c["error"] for c in chunks if "error" in c), None)
    if error is not None:
        raise ValueError(f"llama.cpp refused the request: {error.get('message', error)}")
    text, finish = [], "length"
    for chunk in chunks:
        for choice in chunk.get("choices") or []:
            piece = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
            text.append(piece)
            finish = choice.get("finish_reason") or finish
    last = chunks[-1] if chunks else {}
    timings = last.get("timings") or next((c["timings"] for c in chunks if "timings" in c), {})
    predicted = int(timings.get("predicted_n", 0))
    prompt_n = int(timings.get("prompt_n", 0))
    cached = int(timings.get("cache_n", 0))
    usage = next((c["usage"] for c in reversed(chunks) if c.get("usage")), {})
    # the server counts the end-of-generation token; llama-cpp-python's engine does not
    ends_on_eog = finish == "stop" and not stops
    output = predicted - 1 if ends_on_eog and predicted else predicted
    return Generation(
        text="".join(text),
        input_tokens=int(usage.get("prompt_tokens", prompt_n + cached)),
        output_tokens=max(output, 0),
        cached_tokens=cached,
        finish_reason=finish,
        started=started,
        first_token=first,
        ended=ended,
        cpu_s=time.process_time() - cpu0,
        decode_steps=max(predicted - 1, 0),
        engine={
            "engine_prefill_s": round(float(timings.get("prompt_ms", 0.0)) / 1000, 6),
            "engine_prefill_tokens": prompt_n,
            "engine_decode_s": round(float(timings.get("predicted_ms", 0.0)) / 1000, 6),
            "engine_decode_tokens": predicted,
        },
    )
