"""Base classes for the three kinds of part: backends, tasks and metrics.

A plugin's factory receives the manifest entry's parameters (already validated against the
plugin's JSON Schema, with relative file paths resolved) and a :class:`BuildContext`, and
returns an instance of one of these. Subclassing is optional (duck typing is enough), but the
base classes give sensible defaults.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.records import ChatRequest, ChatResponse, Message, Outcome, Sample, Score


@dataclass(frozen=True)
class BuildContext:
    """Where and how a part is being built: its id in the manifest, the manifest's folder."""

    id: str
    base_dir: Path
    seed: int | None = None
    run_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Answers chat requests. Everything else (lm-eval, ``harness serve``, agent loops) is
    built on :meth:`chat`, so a backend needs only that one method.

    ``capabilities`` advertises optional features so tasks can pick a mode: ``native_tools``
    (honours ``ChatRequest.tools``), ``constrained`` (grammar-forced calls), ``streaming``
    (measures time to first token), ``loglikelihood`` and ``complete`` (raw text completion).
    ``max_concurrency`` caps how many requests the runner sends at once.
    """

    capabilities: frozenset[str] = frozenset()
    max_concurrency: int = 1

    def __init__(self, params: dict[str, Any], context: BuildContext) -> None:
        self.params = params
        self.context = context

    def chat(self, request: ChatRequest) -> ChatResponse:
        raise NotImplementedError(f"{type(self).__name__} does not implement chat()")

    def complete(self, prompt: str, request: ChatRequest) -> ChatResponse:
        """Raw text completion (no chat template). Default: send the prompt as a user turn."""
        messages = (Message(role="user", content=prompt),)
        return self.chat(ChatRequest(messages=messages, params=request.params))

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        """Log-probability of ``continuation`` after ``context`` and whether it is greedy."""
        raise NotImplementedError(f"{type(self).__name__} cannot score log-likelihoods")

    def info(self) -> dict[str, Any]:
        """Provenance for ``manifest.json``: model file and hash, runtime and its version."""
        return {}

    def close(self) -> None:
        """Release files, sessions and threads. Called once at the end of a run."""


class Task:
    """Yields samples, turns each into model calls, and names its default metrics.

    The default :meth:`play` is one turn: :meth:`request` then ``backend.chat`` then
    :meth:`decode`. Multi-turn and agent tasks override :meth:`play`.
    """

    default_metrics: tuple[str, ...] = ()

    def __init__(self, params: dict[str, Any], context: BuildContext) -> None:
        self.params = params
        self.context = context

    def samples(self) -> Iterable[Sample]:
        raise NotImplementedError(f"{type(self).__name__} does not implement samples()")

    def data_files(self) -> list[Path]:
        """Files the samples come from; their hashes go into the run's provenance."""
        return []

    def size(self) -> int | None:
        """How many samples :meth:`samples` yields, if cheap to know (for progress and ETA)."""
        return None

    def info(self) -> dict[str, Any]:
        """Provenance for ``manifest.json``: data version, source package, prompt version."""
        return {}

    def request(self, sample: Sample) -> ChatRequest:
        return ChatRequest(messages=sample.messages, tools=sample.tools, sample_id=sample.id)

    def decode(self, sample: Sample, response: ChatResponse) -> Outcome:
        return Outcome(output=response.text, calls=response.tool_calls, responses=(response,))

    def play(self, sample: Sample, backend: Backend) -> Outcome:
        request = replace(self.request(sample), task=self.context.id, sample_id=sample.id)
        return self.decode(sample, backend.chat(request))


class Metric:
    """Scores one sample's outcome. ``aggregation`` says how values combine (only ``mean`` now)."""

    aggregation: str = "mean"

    def __init__(self, params: dict[str, Any], context: BuildContext) -> None:
        self.params = params
        self.context = context

    def score(self, sample: Sample, outcome: Outcome) -> Score | dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} does not implement score()")
