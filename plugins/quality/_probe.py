"""The logit probe: each paragraph scored by the backend and by the reference, token for
token, with the whole-vocabulary distributions compared (exact, not a top-k sample)."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from harness import Backend
from harness import BuildContext
from harness import Message
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import Task

from . import LogitProbeParams

STATS = ("nll", "ppl", "kl", "kl_p99", "top1", "tokens")


class LogitProbe(Task):
    """One sample per paragraph; playing it asks the backend for ``logprobs(text)``."""

    default_metrics = ("logit_stats",)
    params: LogitProbeParams

    def __init__(self, params: LogitProbeParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self._reference = (
            context.build("backend", params.reference, lazy=True) if params.reference else None
        )
        self._cache: dict[str, tuple[list[int], np.ndarray]] = {}

    def samples(self) -> Iterator[Sample]:
        for index, paragraph in enumerate(self._paragraphs()[: self.params.limit]):
            yield Sample(id=f"p{index}", messages=(Message("user", paragraph),), target=None)

    def _paragraphs(self) -> list[str]:
        text = (
            Path(self.params.text).read_text(encoding="utf-8")
            if self.params.text
            else (
                resources.files("harness_registry")
                .joinpath("data/text/probe.txt")
                .read_text("utf-8")
            )
        )
        return [p.strip() for p in text.split("\n\n") if p.strip()]

    def size(self) -> int:
        return len(self._paragraphs()[: self.params.limit])

    def play(self, sample: Sample, backend: Backend) -> Outcome:
        text = sample.messages[0].content or ""
        if "logprobs" not in getattr(backend, "capabilities", ()):
            raise ValueError(
                f"backend {type(backend).__name__} cannot score a text (no `logprobs` "
                "capability); use onnx, or llamacpp with engine: llama-cpp-python"
            )
        ids, rows = backend.logprobs(text)  # type: ignore[attr-defined]
        stats = likelihood(ids, rows) | self._compare(sample.id, text, ids, rows)
        return Outcome(output=None, fields={"logit_stats": stats})

    def _compare(self, key: str, text: str, ids: list[int], rows: np.ndarray) -> dict[str, Any]:
        if self._reference is None:
            return {}
        if key not in self._cache:
            self._cache[key] = self._reference().logprobs(text)
        ref_ids, ref_rows = self._cache[key]
        if list(ref_ids) != list(ids):
            return {"compare_error": "the reference tokenizes this paragraph differently"}
        return divergence(ref_rows, rows)

    def info(self) -> dict[str, Any]:
        return {"paragraphs": self.size(), "reference": self.params.reference}


def likelihood(ids: list[int], rows: np.ndarray) -> dict[str, float]:
    """Mean negative log-likelihood of each next token, and the paragraph's perplexity."""
    nll = -rows[np.arange(len(ids) - 1), ids[1:]]
    return {"nll": float(nll.mean()), "ppl": float(np.exp(nll.mean())), "tokens": len(ids) - 1}


def divergence(reference: np.ndarray, model: np.ndarray) -> dict[str, float]:
    """Per-token KL(reference || model) over the vocabulary: mean and 99th percentile, and
    how often both rank the same token first."""
    p = np.exp(reference)
    kl = (p * (reference - model)).sum(axis=1)
    same = reference.argmax(axis=1) == model.argmax(axis=1)
    return {
        "kl": float(kl.mean()),
        "kl_p99": float(np.percentile(kl, 99)),
        "top1": float(same.mean()),
    }


class LogitStats(Metric):
    """The probe's statistics as scores (means over paragraphs in the aggregates)."""

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        stats = outcome.fields.get("logit_stats") or {}
        values = {k: float(stats[k]) for k in STATS if k in stats}
        labels = {"compare_error": stats["compare_error"]} if "compare_error" in stats else {}
        return Score(values=values, labels=labels)
