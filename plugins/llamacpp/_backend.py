"""The ``llamacpp`` backend: a GGUF model in this process through llama-cpp-python.

Imported only when a manifest uses the backend (``llama_cpp`` loads a native library).

Generation runs our own loop over ``Llama.generate`` rather than ``create_completion`` so that
every number is measured, not inferred: the wall clock from the request to the first token
(TTFT), the tokens the model's own tokenizer produced and consumed, and the decode rate. See
``docs/efficiency.md`` for the definitions.

Modes (``ChatRequest.mode``):

- ``None`` / ``"prompt"``: the GGUF's chat template (or ``chat_format``), tools ignored.
- ``"native"``: a template that renders tools gets them and ``<tool_call>`` blocks are parsed
  from the text. Otherwise (SmolLM2's template has no tools) llama-cpp-python's
  ``chatml-function-calling`` handler runs: it lists the tools in the system message (one is
  added when the conversation has none), lets a grammar choose ``message:`` or
  ``functions.<name>:`` and then fills the arguments under the tool's JSON Schema; tool_choice
  ``auto`` unless the request names a function (the handler has no ``required``). It is not
  streamed, so there is no TTFT, and its token counts are the handler's ``usage``. With
  SmolLM2-135M it nearly always picks a function, even for "Tell me a joke."
- ``"constrained"``: a grammar built from the tools' JSON Schemas forces a JSON array of calls,
  ``[{"name": <an offered name>, "arguments": <that tool's schema>}, ...]``, or ``[]`` for no
  call (``required`` or a named tool_choice needs one call or more). Tools are described in the
  system message when the template cannot render them. At most ``max_calls`` calls (a request
  may set ``params.extra["max_calls"]``); output cut by ``max_tokens`` keeps the calls completed
  before the cut and names the problem in ``extra["tool_call_error"]``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from harness_plugins.shared import scoring
from harness_plugins.shared import tool_calls as tools_lib

from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import InputError
from harness import Message
from harness import ToolCall

from . import ENGINE_CAPABILITIES
from . import SCORING
from . import LlamaCppParams
from . import _common as common
from ._common import WARMUP_MESSAGES
from ._common import WARMUP_TOKENS
from ._common import Generation
from ._common import message_dict as _message_dict

try:
    import llama_cpp
    from llama_cpp import llama_chat_format
    from llama_cpp.llama_grammar import LlamaGrammar
    from llama_cpp.llama_grammar import json_schema_to_gbnf
except ImportError as exc:  # the core turns this into a one-line PluginError (exit 2)
    raise ImportError(
        f"llama-cpp-python is not usable ({exc}); use the prebuilt engine (pip install "
        "xllamacpp==2026.10.11549; engine: xllamacpp) or build it with "
        'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON '
        '-DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF" '
        "pip install --no-cache-dir llama-cpp-python==0.3.36 diskcache"
    ) from exc

FALLBACK_NATIVE = "chatml-function-calling"


class LlamaCppBackend(common.EngineBackend):
    """One llama.cpp context; requests are served one at a time (a lock guards it)."""

    capabilities = ENGINE_CAPABILITIES | SCORING

    def __init__(self, params: LlamaCppParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self._grammars: dict[str, LlamaGrammar] = {}
        self.llm, self.load_s = self._load()
        self.formatter, self.template_source = _formatter(self.llm)
        self.template_has_tools = "tools" in getattr(self.formatter, "template", "")
        self.warmup_s = self._warm_up(params.warmup)

    # --- set-up -----------------------------------------------------------------------------

    def _load(self) -> tuple[llama_cpp.Llama, float]:
        p = self.params
        started = time.perf_counter()
        try:
            llm = llama_cpp.Llama(
                model_path=str(self.model.path),
                n_ctx=p.n_ctx,
                n_batch=p.n_batch,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads_batch,
                n_gpu_layers=p.n_gpu_layers,
                use_mmap=p.use_mmap,
                seed=self._seed(None),
                chat_format=p.chat_format,
                verbose=False,
            )
        except ValueError as exc:
            raise InputError(
                f"model file {self.model.path}: llama.cpp could not load it ({exc}); "
                "check that it is a GGUF file this llama-cpp-python version supports"
            ) from None
        return llm, time.perf_counter() - started

    def _warm_up(self, count: int) -> float:
        """Generations before the first sample, so caches, pages and threads are warm and the
        first sample's timings look like every other's."""
        started = time.perf_counter()
        for _ in range(count):
            tokens, stops = self._prompt_tokens(WARMUP_MESSAGES, None)
            self._generate(tokens, stops, None, {"max_tokens": WARMUP_TOKENS}, time.perf_counter())
        return time.perf_counter() - started

    def _seed(self, request: ChatRequest | None) -> int:
        return common.seed(self.params, self.context, request)

    # --- the Backend interface --------------------------------------------------------------

    def _plain(self, request: ChatRequest, started: float) -> ChatResponse:
        tokens, stops = self._prompt_tokens(request.messages, None)
        return self._generate(tokens, stops, request, {}, started).response()

    def complete(self, prompt: str, request: ChatRequest) -> ChatResponse:
        """Raw text completion: no chat template; BOS only where the model asks for one."""
        with self._lock:
            started = time.perf_counter()
            tokens = self.llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
            return self._generate(tokens, [], request, {}, started).response()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of raw ``text`` (no BOS, special tokens read as text)."""
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def logprobs(self, text: str) -> tuple[list[int], Any]:
        """Teacher forcing over raw ``text`` (no template): its token ids and, for every token
        after the first, the log-probabilities over the vocabulary that predicted it. A second
        context with ``logits_all`` (sized to the text) keeps every position's logits."""
        import numpy as np

        with self._lock:
            ids = self.tokenize(text)
            scorer = self._scorer(len(ids))
            scorer.reset()
            scorer.eval(ids)
            logits = np.array(scorer.scores[: len(ids) - 1], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        return ids, logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        """The continuation's log-probability after the context, and whether it is greedy
        (harness_plugins.shared.scoring's rule, lm-eval's)."""
        return scoring.loglikelihood(self, context, continuation)

    def _scorer(self, tokens: int) -> Any:
        import llama_cpp

        if getattr(self, "_scoring", None) is None or self._scoring.n_ctx() < tokens:
            self._scoring = llama_cpp.Llama(
                model_path=str(self.model.path),
                n_ctx=max(512, 1 << (tokens - 1).bit_length()),
                n_batch=self.params.n_batch,
                n_threads=self.n_threads,
                logits_all=True,
                verbose=False,
            )
        return self._scoring

    def info(self) -> dict[str, Any]:
        meta = self.llm.metadata
        return {
            "runtime": "llama-cpp-python",
            "runtime_version": llama_cpp.__version__,
            "llama_cpp_version": llama_cpp.__version__,
            "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip(),
            **self.shared_info(),
            "gguf": {k: meta[k] for k in _GGUF_KEYS if k in meta},
            "chat_template_source": self.template_source,
            "template_renders_tools": self.template_has_tools,
            "n_ctx": self.llm.n_ctx(),
        }

    def close(self) -> None:
        self.llm.close()

    # --- prompts ----------------------------------------------------------------------------

    def _prompt_tokens(
        self, messages: tuple[Message, ...] | list[Message], tools: list[dict] | None
    ) -> tuple[list[int], list[str]]:
        """Render the chat template and tokenize exactly as llama-cpp-python's handlers do."""
        rendered = self.formatter(messages=[_message_dict(m) for m in messages], tools=tools)
        tokens = self.llm.tokenize(
            rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True
        )
        stops = [rendered.stop] if isinstance(rendered.stop, str) else list(rendered.stop or [])
        # the end-of-turn token ends generation by itself (it is an EOG token): no text search
        eos = self.llm._model.token_get_text(self.llm.token_eos())
        return tokens, [s for s in stops if s != eos]

    def _tool_messages(self, messages: tuple[Message, ...], tools: list[dict]) -> list[Message]:
        return common.tool_messages(messages, tools, self.params.tool_prompt)

    # --- generation -------------------------------------------------------------------------

    def _generate(
        self,
        tokens: list[int],
        stops: list[str],
        request: ChatRequest | None,
        overrides: dict[str, Any],
        started: float,
        grammar: LlamaGrammar | None = None,
    ) -> Generation:
        """Stream tokens until an end-of-generation token, a stop string or ``max_tokens``."""
        sampling = self._sampling(request) | overrides
        max_tokens = self._max_tokens(len(tokens), sampling.pop("max_tokens"))
        stop_bytes = [s.encode("utf-8") for s in [*stops, *sampling.pop("stop")] if s]
        cached = self._prepare_context(tokens)
        self.llm.set_seed(self._seed(request))
        llama_cpp.llama_perf_context_reset(self.llm.ctx)
        cpu0 = time.process_time()
        out: list[int] = []
        text, first, finish, steps = b"", None, "length", 0
        for token in self.llm.generate(tokens, grammar=grammar, **sampling):
            if first is None:
                first = time.perf_counter()
            else:
                steps += 1
            if llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token):
                finish = "stop"
                break
            out.append(token)
            if stop_bytes:
                text, hit = _add_piece(text, self.llm.detokenize([token]), stop_bytes)
                if hit:
                    finish = "stop"
                    break
            if len(out) >= max_tokens:
                break
        ended = time.perf_counter()
        cpu_s = time.process_time() - cpu0
        if not stop_bytes:
            text = self.llm.detokenize(out)
        return Generation(
            text=text.decode("utf-8", errors="replace"),
            input_tokens=len(tokens),
            output_tokens=len(out),
            cached_tokens=cached,
            finish_reason=finish,
            started=started,
            first_token=first,
            ended=ended,
            cpu_s=cpu_s,
            decode_steps=steps,
            engine=_engine_counters(self.llm),
        )

    def _prepare_context(self, tokens: list[int]) -> int:
        """Forget the previous prompt (every sample prefills from scratch, as on a device that
        clears its KV cache between examples) unless ``prompt_cache`` is set; then report how
        many leading tokens llama.cpp will reuse."""
        if not self.params.prompt_cache:
            self.llm.reset()
            return 0
        cached = 0
        for a, b in zip(self.llm._input_ids[: self.llm.n_tokens].tolist(), tokens, strict=False):
            if a != b:
                break
            cached += 1
        return min(cached, len(tokens) - 1)

    def _sampling(self, request: ChatRequest | None) -> dict[str, Any]:
        return common.sampling(self.params, request)

    def _max_tokens(self, prompt_len: int, wanted: int | None) -> int:
        room = self.llm.n_ctx() - prompt_len
        if room <= 0:
            raise ValueError(
                f"the prompt has {prompt_len} tokens and n_ctx is {self.llm.n_ctx()}: "
                "raise n_ctx (or shorten the prompt)"
            )
        return room if not wanted or wanted <= 0 else min(int(wanted), room)

    # --- tools ------------------------------------------------------------------------------

    def _constrained(self, request: ChatRequest, tools: list[dict], started: float) -> ChatResponse:
        """Grammar-forced JSON array of calls over the offered tools, or ``[]``."""
        max_calls = request.params.extra.get("max_calls", self.params.max_calls)
        grammar = self._calls_grammar(tools, request.tool_choice, max_calls)
        if self.template_has_tools:
            tokens, stops = self._prompt_tokens(request.messages, tools)
        else:
            tokens, stops = self._prompt_tokens(self._tool_messages(request.messages, tools), None)
        gen = self._generate(tokens, stops, request, {}, started, grammar=grammar)
        calls, error = tools_lib.parse_calls(gen.text)
        extra = {"tool_call_error": error} if error else {}
        return gen.response(tool_calls=calls, extra=extra)

    def _calls_grammar(self, tools: list[dict], tool_choice: Any, max_calls: int) -> LlamaGrammar:
        """GBNF for :func:`calls_schema`; a tool whose schema the converter (or llama.cpp's
        grammar parser) rejects falls back to "any JSON object" for its arguments."""
        key = json.dumps([tools, tool_choice, max_calls], sort_keys=True, default=str)
        if key not in self._grammars:
            schema = common.calls_schema(tools, tool_choice, max_calls, self._grammar_ok)
            self._grammars[key] = LlamaGrammar.from_string(json_schema_to_gbnf(json.dumps(schema)))
        return self._grammars[key]

    def _grammar_ok(self, schema: dict[str, Any]) -> bool:
        try:
            text = json_schema_to_gbnf(json.dumps(schema))
        except Exception:  # the converter asserts on schemas it cannot handle
            return False
        sampler = llama_cpp.llama_sampler_init_grammar(
            self.llm._model.vocab, text.encode("utf-8"), b"root"
        )
        if not sampler:
            return False
        llama_cpp.llama_sampler_free(sampler)
        return True

    def _native(self, request: ChatRequest, tools: list[dict], started: float) -> ChatResponse:
        """Tools through the template when it renders them, else llama-cpp-python's
        ``chatml-function-calling`` handler (tool_choice ``auto`` unless one is named)."""
        if self.template_has_tools:
            tokens, stops = self._prompt_tokens(request.messages, tools)
            gen = self._generate(tokens, stops, request, {}, started)
            return gen.response(tool_calls=tools_lib.parse_tagged_calls(gen.text))
        return self._function_calling_handler(request, tools, started)

    def _function_calling_handler(
        self, request: ChatRequest, tools: list[dict], started: float
    ) -> ChatResponse:
        sampling = self._sampling(request)
        messages = [_message_dict(m) for m in request.messages]
        if not messages or messages[0]["role"] != "system":
            # the handler lists the tools inside the system message: without one they vanish
            messages.insert(0, {"role": "system", "content": "You are a helpful assistant."})
        if not self.params.prompt_cache:
            self.llm.reset()
        self.llm.set_seed(self._seed(request))
        cpu0 = time.process_time()
        result = llama_chat_format.get_chat_completion_handler(FALLBACK_NATIVE)(
            llama=self.llm,
            messages=messages,
            tools=[common.openai_tool(t) for t in tools],
            tool_choice=_native_choice(request.tool_choice),
            temperature=sampling["temp"],
            top_p=sampling["top_p"],
            top_k=sampling["top_k"],
            min_p=sampling["min_p"],
            repeat_penalty=sampling["repeat_penalty"],
            max_tokens=self._max_tokens(0, sampling["max_tokens"]),
            stop=sampling["stop"],
            stream=False,
        )
        total = time.perf_counter() - started
        return _handler_response(result, total, time.process_time() - cpu0)


_GGUF_KEYS = (
    "general.name",
    "general.architecture",
    "general.file_type",
    "general.size_label",
    "tokenizer.ggml.model",
)


def _formatter(llm: llama_cpp.Llama) -> tuple[Any, str]:
    """The prompt formatter llama-cpp-python itself would use, and where it came from."""
    name = llm.chat_format or "llama-2"
    if name.startswith("chat_template.") and name in llm._chat_handlers:
        suffix = name[len("chat_template") :]
        key = "tokenizer.chat_template" + ("" if suffix == ".default" else suffix)
        eos, bos = llm.token_eos(), llm.token_bos()
        formatter = llama_chat_format.Jinja2ChatFormatter(
            template=llm.metadata[key],
            eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "",
            stop_token_ids=[eos],
        )
        return formatter, f"gguf:{key}"
    try:
        handler = llama_chat_format.get_chat_completion_handler(name)
    except llama_chat_format.LlamaChatCompletionHandlerNotFoundException as exc:
        raise InputError(f"chat_format {name!r}: {exc}") from None
    formatter = _closure_value(handler, "chat_formatter")
    if formatter is None:
        raise InputError(
            f"chat_format {name!r} is a llama-cpp-python handler without a plain prompt "
            "formatter; choose a template format such as 'chatml' or 'llama-3'"
        )
    return formatter, f"llama-cpp-python:{name}"


def _closure_value(function: Any, name: str) -> Any:
    """A variable captured by ``function`` (how llama-cpp-python keeps a format's formatter)."""
    code = getattr(function, "__code__", None)
    if code is None or name not in code.co_freevars:
        return None
    return function.__closure__[code.co_freevars.index(name)].cell_contents


def _native_choice(choice: str | dict | None) -> str | dict:
    """OpenAI tool_choice -> what the handler accepts (it has no "required": use "auto")."""
    if isinstance(choice, dict):
        return {"type": "function", "function": {"name": tools_lib.tool_function(choice)["name"]}}
    return "none" if choice == "none" else "auto"


def _handler_response(result: dict[str, Any], total: float, cpu_s: float) -> ChatResponse:
    choice = result["choices"][0]
    message = choice["message"]
    calls = None
    if message.get("tool_calls"):
        calls = tuple(
            ToolCall(
                name=c["function"]["name"],
                arguments=common.call_arguments(c["function"]["arguments"]),
            )
            for c in message["tool_calls"]
        )
    usage = result.get("usage") or {}
    text = message.get("content")
    if text is None and calls is not None:
        text = json.dumps([c.to_dict() for c in calls])
    return ChatResponse(
        text=text,
        tool_calls=calls,
        input_tokens=usage.get("prompt_tokens"),
        output_tokens=usage.get("completion_tokens"),
        finish_reason=choice.get("finish_reason"),
        timing={"total_s": round(total, 6), "cpu_s": round(cpu_s, 6)},
        extra={"native_handler": FALLBACK_NATIVE},
    )


def _engine_counters(llm: llama_cpp.Llama) -> dict[str, float]:
    """llama.cpp's own clock for the last generation (what MobileAIBench reports): prompt
    evaluation and single-token evaluation, without sampling or Python."""
    perf = llama_cpp.llama_perf_context(llm.ctx)
    return {
        "engine_prefill_s": round(perf.t_p_eval_ms / 1000, 6),
        "engine_prefill_tokens": perf.n_p_eval,
        "engine_decode_s": round(perf.t_eval_ms / 1000, 6),
        "engine_decode_tokens": perf.n_eval,
    }


def _add_piece(text: bytes, piece: bytes, stops: list[bytes]) -> tuple[bytes, bool]:
    """Append a token's bytes; cut at the first stop string that is now complete."""
    start = len(text)
    text += piece
    hits = [text.find(s, max(0, start - len(s) + 1)) for s in stops]
    hits = [h for h in hits if h >= 0]
    return (text[: min(hits)], True) if hits else (text, False)
