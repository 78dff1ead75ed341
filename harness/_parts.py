"""The kinds of part a plugin provides: backends, tasks, metrics and decoders.

A plugin's factory receives the manifest entry's parameters (validated against the plugin's
declaration, defaults filled in, relative file paths resolved) and a :class:`BuildContext`, and
returns an instance of one of these. Subclassing is optional (duck typing is enough), but the
base classes give sensible defaults, including :meth:`close`, which the run calls once on every
part it built, whatever happened.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from harness._errors import HarnessError
from harness._records import ChatRequest
from harness._records import ChatResponse
from harness._records import Message
from harness._records import Outcome
from harness._records import Sample
from harness._records import Score
from harness._records import ToolCall

if TYPE_CHECKING:
    from harness._manifest import Entry
    from harness._plugins import Component
    from harness._plugins import PluginHost

log = logging.getLogger("harness")

DECODE_ERROR_KINDS = ("empty", "syntax", "shape", "native")


@dataclass(frozen=True)
class BuildContext:
    """Where and how a part is being built: its id in the manifest, the manifest's folder, the
    run's seed and directory, and :meth:`build` for the parts it needs in turn."""

    id: str
    base_dir: Path
    seed: int | None = None
    run_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    builder: Builder | None = field(default=None, repr=False, compare=False)

    def build(
        self,
        kind: str,
        spec: str | Mapping[str, Any],
        *,
        id: str | None = None,
        lazy: bool = False,
    ) -> Any:
        """Build another part (a decoder a task uses, a judge backend a metric calls).

        ``spec`` is a plugin name or a manifest-style entry (``{"type": ..., params...}``),
        validated against that plugin's parameters like a manifest entry. Within a run the part
        is built once for the same spec and closed when the run ends; with a context made by
        hand (no ``builder``) the caller closes what it built. ``lazy=True`` validates now and
        returns a function that builds the part on its first call (a judge model loads only
        if some sample needs it).
        """
        builder = self.builder or Builder(base_dir=self.base_dir, seed=self.seed)
        where = f"{self.id}: {kind}"
        if lazy:
            builder.check(kind, spec, where=where)
            return partial(builder.build, kind, spec, id=id, where=where)
        return builder.build(kind, spec, id=id, where=where)


class Part:
    """What every kind shares: ``params`` and ``context`` as given, and :meth:`close`."""

    def __init__(self, params: Mapping[str, Any], context: BuildContext) -> None:
        self.params: Any = params
        self.context = context

    def close(self) -> None:
        """Release files, sessions, threads and child parts. Called once when the run ends."""


class Backend(Part):
    """Answers chat requests. Everything else (lm-eval, ``harness serve``, agent loops) is
    built on :meth:`chat`, so a backend needs only that one method.

    ``capabilities`` advertises optional features so tasks can pick a mode: ``native_tools``
    (honours ``ChatRequest.tools``), ``constrained`` (grammar-forced calls), ``streaming``
    (measures time to first token), ``loglikelihood``, ``complete`` (raw text completion) and
    ``sample_lookup`` (answers by looking ``ChatRequest.task`` and ``sample_id`` up, as
    ``replay`` does: ``harness serve`` finds them from the conversation).
    ``max_concurrency`` caps how many requests the runner sends at once.
    """

    capabilities: frozenset[str] = frozenset()
    max_concurrency: int = 1

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


class Task(Part):
    """Yields samples, turns each into model calls, and names its default metrics.

    The default :meth:`play` is one turn: :meth:`request` then ``backend.chat`` then
    :meth:`decode`. Multi-turn and agent tasks override :meth:`play`. A sample's
    ``metadata["subtask"]`` (for example a BFCL category) becomes the record's ``subtask``
    when the task's :meth:`decode` copies it into ``Outcome.fields``; results then have a row
    per subtask, and :meth:`info` may declare ``groups`` of subtasks.
    """

    default_metrics: tuple[str, ...] = ()

    def samples(self) -> Iterable[Sample]:
        raise NotImplementedError(f"{type(self).__name__} does not implement samples()")

    def data_files(self) -> list[Path]:
        """Files the samples come from; their hashes go into the run's provenance."""
        return []

    def size(self) -> int | None:
        """How many samples :meth:`samples` yields, if cheap to know (for progress and ETA)."""
        return None

    def info(self) -> dict[str, Any]:
        """Provenance for ``manifest.json``: data version, source package, prompt version.

        Keys the core reads: ``groups`` (declared groups of subtasks, see docs/api.md) and
        ``variant`` (a short label such as a prompting mode that ``harness compare`` adds to
        column names, so differently prompted runs never share a column)."""
        return {}

    def format_axes(self) -> dict[str, tuple[str, ...]]:
        """The prompt-format axes this task can vary (axis -> values), ``{}`` for none.

        A task with axes plays each sample under the configurations a manifest names (its
        ``formats`` parameter, see :func:`harness.formats_param`) and puts ``format`` (the
        configuration's name, ``axis=value&...``) and ``format_item`` (the sample's id
        without the configuration) into each record's fields; the run then reports the score
        per configuration, its spread and the axis that moves it most
        (``results.json`` ``format_sensitivity``, docs/format-sensitivity.md)."""
        return {}

    def aggregate(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Aggregates this task computes itself, for metrics that are not a mean of
        per-sample numbers (a corpus BLEU, a perplexity, an lm-eval task's own aggregation
        and standard errors). ``records`` are one backend's records of this task, read from
        ``samples.jsonl`` only if the method iterates them. Return rows of ``level``
        (``task``, ``subtask`` or ``group``), ``subtask`` (``""`` at task level), ``metric``,
        ``value``, ``stderr`` and ``n``; each replaces the core's row with the same level,
        subtask and metric, or is added. None, the default: the core's means stand."""
        return None

    def request(self, sample: Sample) -> ChatRequest:
        return ChatRequest(
            messages=sample.messages, tools=sample.tools, task=self.context.id, sample_id=sample.id
        )

    def decode(self, sample: Sample, response: ChatResponse) -> Outcome:
        return Outcome(output=response.text, calls=response.tool_calls, responses=(response,))

    def play(self, sample: Sample, backend: Backend) -> Outcome:
        request = self.request(sample)
        if request.task != self.context.id or request.sample_id != sample.id:
            request = replace(request, task=self.context.id, sample_id=sample.id)
        outcome = self.decode(sample, backend.chat(request))
        prompt = last_user_text(request.messages)
        if prompt is None or "prompt" in outcome.fields:
            return outcome
        fields = {"prompt": prompt, **outcome.fields}  # direct: replace() is slow per sample
        return Outcome(outcome.output, outcome.calls, outcome.responses, outcome.error, fields)


#: The most of a prompt a record keeps (the report's sample browser shows it).
PROMPT_CHARS = 2_000


def last_user_text(messages: tuple[Message, ...]) -> str | None:
    """The last user message's text, cut to :data:`PROMPT_CHARS`: what a record keeps of the
    prompt, so a report can show what the model was asked without the task's data files."""
    for message in reversed(messages):
        if message.role == "user" and isinstance(message.content, str):
            text = message.content
            return text if len(text) <= PROMPT_CHARS else text[: PROMPT_CHARS - 1] + "…"
    return None


class Metric(Part):
    """Scores one sample's outcome: a :class:`Score` or a mapping of names to numbers.

    Return ``{}`` when the metric does not apply to a sample (it is then left out of that
    metric's mean, not counted as 0). A metric that raises is recorded under its own name in
    the record's ``metric_errors``; the other metrics keep their scores. ``aggregation`` says
    how values combine (only ``mean`` now).

    ``counted_labels`` names labels whose values the run counts as samples finish (a text
    value, or each item of a list), so that a report section reads them with
    :meth:`RunView.label_counts` instead of reading ``samples.jsonl`` again.
    """

    aggregation: str = "mean"
    counted_labels: tuple[str, ...] = ()

    def score(self, sample: Sample, outcome: Outcome) -> Score | Mapping[str, float]:
        raise NotImplementedError(f"{type(self).__name__} does not implement score()")


class DecodeError(Exception):
    """The output could not be read as calls.

    ``kind``: ``empty`` (nothing to decode), ``syntax`` (not parseable in the expected format),
    ``shape`` (parsed, but not a list of calls), ``native`` (the backend's tool calls were
    malformed).
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __str__(self) -> str:
        return f"{self.kind}: {self.args[0]}"


class Decoder(Part):
    """Turns a response's raw text and native tool calls into calls. Model output is untrusted:
    decoders parse (``ast``, ``json``, regular expressions), never evaluate."""

    def decode(self, text: str | None, tool_calls: tuple[ToolCall, ...] | None) -> list[ToolCall]:
        raise NotImplementedError(f"{type(self).__name__} does not implement decode()")

    def outcome(self, response: ChatResponse, fields: Mapping[str, Any] | None = None) -> Outcome:
        """A single-turn outcome: the decoded calls, or ``calls=None`` and
        ``fields["decode_error"]`` (the typed reason) when the output could not be decoded.
        The raw text is always kept."""
        out = dict(fields or {})
        calls: tuple[ToolCall, ...] | None
        try:
            calls = tuple(self.decode(response.text, response.tool_calls))
        except DecodeError as exc:
            calls, out["decode_error"] = None, str(exc)
        return Outcome(output=response.text, calls=calls, responses=(response,), fields=out)


def close_quietly(part: Any) -> str | None:
    """Call ``part.close()`` if it has one; return the error as text instead of raising, so one
    part that fails to close does not keep the others open."""
    close = getattr(part, "close", None)
    if not callable(close):
        return None
    try:
        close()
    except Exception as exc:
        return f"{type(part).__name__}.close() failed: {type(exc).__name__}: {exc}"
    return None


class Builder:
    """Builds parts through the plugin host: the one place a manifest entry or a spec becomes a
    live part. Within a run each distinct spec is built once, and :meth:`close` closes every
    part in reverse order of building, whatever happened."""

    def __init__(
        self,
        host: PluginHost | None = None,
        base_dir: Path | None = None,
        seed: int | None = None,
        run_dir: Path | None = None,
    ) -> None:
        from harness._plugins import PluginHost

        self.host = host or PluginHost.current()
        self.base_dir = base_dir or Path.cwd()
        self.seed, self.run_dir = seed, run_dir
        self._built: dict[str, Any] = {}
        self._lock = threading.RLock()  # a part's factory may build parts in turn

    def build(
        self, kind: str, spec: str | Mapping[str, Any], *, id: str | None = None, where: str = ""
    ) -> Any:
        """A part from a plugin name or a manifest-style entry, validated like one."""
        item = {"type": spec} if isinstance(spec, str) else dict(spec)
        part_id = id or str(item.get("id") or item.get("type"))
        key = json.dumps([kind, part_id, item], sort_keys=True, default=str)
        with self._lock:
            if key not in self._built:
                component, params = self._resolve(kind, item, where or kind)
                self._built[key] = self._instantiate(component, params, part_id)
            return self._built[key]

    def check(self, kind: str, spec: str | Mapping[str, Any], *, where: str = "") -> None:
        """Raise :class:`HarnessError` (one line per problem) if ``spec`` would not build."""
        self._resolve(kind, {"type": spec} if isinstance(spec, str) else dict(spec), where or kind)

    def _resolve(
        self, kind: str, item: dict[str, Any], where: str
    ) -> tuple[Component, dict[str, Any]]:
        from harness._schema import resolve_params

        component = self.host.component(kind, str(item.get("type")))
        params, problems = resolve_params(component, item, where, self.base_dir)
        if problems:
            raise HarnessError("; ".join(problems))
        return component, params

    def build_entry(self, entry: Entry) -> Any:
        """A part from a manifest entry that :func:`harness.load_manifest` already resolved."""
        with self._lock:
            key = json.dumps([entry.kind, entry.id, "entry"])
            if key not in self._built:
                component = self.host.component(entry.kind, entry.type)
                self._built[key] = self._instantiate(component, entry.params, entry.id)
            return self._built[key]

    def _instantiate(self, component: Component, params: Mapping[str, Any], part_id: str) -> Any:
        factory = component.load()
        if component.params_class is not None:
            params = component.params_class.from_mapping(params)
        context = BuildContext(part_id, self.base_dir, self.seed, self.run_dir, builder=self)
        try:
            return factory(params, context)
        except HarnessError:
            raise
        except Exception as exc:
            raise HarnessError(
                f"{component.kind} {part_id!r} (type {component.name!r}, package "
                f"{component.package!r}) could not be set up: {type(exc).__name__}: {exc}"
            ) from exc

    def close(self) -> list[str]:
        """Close every part built, newest first; return the failures (logged, never raised)."""
        with self._lock:
            parts, self._built = list(self._built.values()), {}
        failures = [e for e in map(close_quietly, reversed(parts)) if e]
        for failure in failures:
            log.warning("%s", failure)
        return failures
