"""One measured generation of a local engine, and its timings as docs/efficiency.md defines
them: every local backend (llama.cpp's two engines, ONNX Runtime) reports the same fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse


def seed(params: Any, context: BuildContext, request: ChatRequest | None) -> int:
    """The request's seed, else the backend's ``seed`` parameter, else the run's, else 0."""
    for value in (request.params.seed if request else None, params.seed, context.seed):
        if value is not None:
            return int(value)
    return 0


@dataclass
class Generation:
    """One streamed generation: the text, the token counts and the clock readings."""

    text: str
    input_tokens: int
    output_tokens: int
    cached_tokens: int
    finish_reason: str
    started: float
    first_token: float | None
    ended: float
    cpu_s: float
    decode_steps: int
    engine: dict[str, float]

    def timing(self) -> dict[str, float]:
        """Seconds and rates as defined in docs/efficiency.md."""
        total = self.ended - self.started
        out: dict[str, float] = {"total_s": round(total, 6), "cpu_s": round(self.cpu_s, 6)}
        if self.first_token is None:
            return out
        ttft = self.first_token - self.started
        out["ttft_s"] = round(ttft, 6)
        prefilled = self.input_tokens - self.cached_tokens
        if ttft > 0 and prefilled > 0:
            out["prefill_tok_s"] = round(prefilled / ttft, 3)
        decode_time = self.ended - self.first_token
        if self.decode_steps > 0 and decode_time > 0:
            out["decode_tok_s"] = round(self.decode_steps / decode_time, 3)
        return out | self.engine

    def response(self, **fields: Any) -> ChatResponse:
        extra = {"cached_tokens": self.cached_tokens} if self.cached_tokens else {}
        return ChatResponse(
            text=fields.pop("text", self.text),
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            finish_reason=self.finish_reason,
            timing=self.timing(),
            extra={**extra, **fields.pop("extra", {})},
            **fields,
        )
