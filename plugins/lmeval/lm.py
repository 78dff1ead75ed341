"""Any backend a manifest can name, as an lm-eval ``LM``.

``HarnessLM({"type": "llamacpp", "model": "smollm2-135m-instruct"})`` builds the backend as a
manifest entry would be built (same parameters, same validation) and answers lm-eval's three
request types:

- ``generate_until``: the context as raw text through ``Backend.complete`` when the backend
  has it (lm-eval's prompt is already formatted), else as one user message through
  ``Backend.chat``; lm-eval's ``until`` strings are stop strings and the answer is cut at the
  first one; ``max_gen_toks`` and ``temperature`` are passed on;
- ``loglikelihood``: the continuation's summed log-probability after the context, and whether
  it is the greedy continuation, from the backend's ``logprobs`` (teacher forcing over context
  + continuation, the continuation's tokens being those after the context's own tokens, as
  lm-eval's own models split them);
- ``loglikelihood_rolling``: the whole text's summed log-probability (all tokens but the first).

From lm-eval's command line the model is ``harness`` with the backend's parameters as
``--model_args type=llamacpp,model=smollm2-135m-instruct`` (``harness lm-eval`` registers it
first; see docs/lm-eval.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from harness import BuildContext
from harness import ChatRequest
from harness import GenerationParams
from harness import Message


@register_model("harness")
class HarnessLM(LM):
    """One harness backend behind lm-eval's interface (requests answered one at a time)."""

    def __init__(self, backend: dict[str, Any] | Any, base_dir: str | Path = ".") -> None:
        super().__init__()
        self.spec = backend if isinstance(backend, dict) else None
        context = BuildContext("lm-eval", Path(base_dir))
        self.backend = context.build("backend", backend) if isinstance(backend, dict) else backend

    @classmethod
    def create_from_arg_string(
        cls, arg_string: str, additional_config: dict[str, Any] | None = None
    ) -> HarnessLM:
        """``type=llamacpp,model=smollm2-135m-instruct,max_tokens=64`` (lm-eval's syntax)."""
        from lm_eval.utils import simple_parse_args_string

        return cls(simple_parse_args_string(arg_string))

    @classmethod
    def create_from_arg_obj(
        cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None
    ) -> HarnessLM:
        """lm-eval's command line: ``--model_args`` as a dict (its batch size and device, in
        ``additional_config``, do not apply: requests are answered one at a time)."""
        return cls(dict(arg_dict))

    # --- generation -------------------------------------------------------------------------

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        return [self._generate(*request.args) for request in requests]

    def _generate(self, context: str, kwargs: dict[str, Any]) -> str:
        until = [u for u in _as_list(kwargs.get("until")) if u]
        params = GenerationParams(
            max_tokens=kwargs.get("max_gen_toks"),
            temperature=float(kwargs.get("temperature", 0.0) or 0.0),
            stop=tuple(until),
        )
        if "complete" in getattr(self.backend, "capabilities", ()):
            response = self.backend.complete(context, ChatRequest(messages=(), params=params))
        else:
            request = ChatRequest(messages=(Message("user", context),), params=params)
            response = self.backend.chat(request)
        return _cut(response.text or "", until)

    # --- log-likelihoods --------------------------------------------------------------------

    def loglikelihood(
        self, requests: list[Any], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        return [self._continuation(*request.args) for request in requests]

    def _continuation(self, context: str, continuation: str) -> tuple[float, bool]:
        self._need_logprobs()
        ids, rows = self.backend.logprobs(context + continuation)
        start = len(self.backend.tokenize(context))
        if start < 1 or start >= len(ids):
            raise ValueError(
                f"cannot score {continuation!r} after {context[-40:]!r}: the context must be "
                "at least one token and the continuation add at least one"
            )
        picked = [float(rows[i - 1][ids[i]]) for i in range(start, len(ids))]
        greedy = all(int(rows[i - 1].argmax()) == ids[i] for i in range(start, len(ids)))
        return sum(picked), greedy

    def loglikelihood_rolling(self, requests: list[Any], disable_tqdm: bool = False) -> list[float]:
        self._need_logprobs()
        out = []
        for request in requests:
            ids, rows = self.backend.logprobs(request.args[0])
            out.append(float(sum(rows[i - 1][ids[i]] for i in range(1, len(ids)))))
        return out

    def _need_logprobs(self) -> None:
        if "logprobs" not in getattr(self.backend, "capabilities", ()):
            raise ValueError(
                f"backend {type(self.backend).__name__} gives no log-probabilities, which "
                "loglikelihood tasks need; use onnx, or llamacpp with engine: llama-cpp-python"
            )


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _cut(text: str, until: list[str]) -> str:
    """The text up to the first stop string (lm-eval's ``until`` semantics)."""
    for stop in until:
        index = text.find(stop)
        if index != -1:
            text = text[:index]
    return text
