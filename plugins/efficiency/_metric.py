"""The ``efficiency`` metric: a sample's timings and token counts, summed over its model calls
(definitions in ``docs/efficiency.md``), plus the process's peak RSS."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from harness_plugins.shared.memory import peak_rss_mb

from harness import ChatResponse
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score


class Efficiency(Metric):
    """Turns a sample's model responses into efficiency numbers."""

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        values = efficiency_values(outcome.responses)
        # the model's process: a device worker reports its own, else it is this process
        reported = [r.timing["peak_rss_mb"] for r in outcome.responses if "peak_rss_mb" in r.timing]
        values["peak_rss_mb"] = max(reported) if reported else peak_rss_mb()
        prefix = "" if self.context.id == "efficiency" else f"{self.context.id}."
        return Score(values={f"{prefix}{k}": v for k, v in values.items()})


def efficiency_values(responses: Sequence[ChatResponse]) -> dict[str, float]:
    """Sums over a sample's model calls; TTFT is the first call's (what a user waits for)."""
    timings = [r.timing for r in responses]
    out: dict[str, float] = {}
    total = _sum(t.get("total_s") for t in timings)
    if total is not None:
        out["total_s"] = total
    if timings and "ttft_s" in timings[0]:
        out["ttft_s"] = float(timings[0]["ttft_s"])
    for field in ("input_tokens", "output_tokens"):
        count = _sum(getattr(r, field) for r in responses)
        if count is not None:
            out[field] = count
    out.update(_rates(responses))
    out.update(_engine_rates(timings))
    cpu = _sum(t.get("cpu_s") for t in timings)
    if cpu is not None and total:
        out["cpu_percent"] = 100.0 * cpu / total
    return out


def _rates(responses: Sequence[ChatResponse]) -> dict[str, float]:
    """Token rates over all calls, recovered from each call's own rate and times so that a
    multi-call sample weighs every token equally (not a mean of per-call rates)."""
    prefill_tokens = prefill_time = decode_tokens = decode_time = 0.0
    for r in responses:
        t = r.timing
        if t.get("prefill_tok_s") and t.get("ttft_s"):
            prefill_tokens += t["prefill_tok_s"] * t["ttft_s"]
            prefill_time += t["ttft_s"]
        if t.get("decode_tok_s") and "ttft_s" in t and "total_s" in t:
            seconds = t["total_s"] - t["ttft_s"]
            decode_tokens += t["decode_tok_s"] * seconds
            decode_time += seconds
    out: dict[str, float] = {}
    if prefill_time > 0:
        out["prefill_tok_s"] = prefill_tokens / prefill_time
    if decode_time > 0:
        out["decode_tok_s"] = decode_tokens / decode_time
    return out


def _engine_rates(timings: Sequence[dict[str, float]]) -> dict[str, float]:
    """llama.cpp's own rates (MobileAIBench's definitions): tokens evaluated per second of
    engine evaluation time, prompt and single-token batches apart."""
    out: dict[str, float] = {}
    for phase in ("prefill", "decode"):
        tokens = _sum(t.get(f"engine_{phase}_tokens") for t in timings)
        seconds = _sum(t.get(f"engine_{phase}_s") for t in timings)
        if tokens and seconds:
            out[f"engine_{phase}_tok_s"] = tokens / seconds
    return out


def _sum(values: Any) -> float | None:
    """The sum of the numbers, or None when any is missing (a partial sum would mislead)."""
    numbers = list(values)
    if not numbers or any(v is None for v in numbers):
        return None
    return math.fsum(float(v) for v in numbers)
