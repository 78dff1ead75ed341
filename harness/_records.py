"""Records that cross plugin boundaries.

Every record is a plain dataclass of JSON-ready values with a stable :meth:`to_dict`, so that a
unit of work can be pickled to another process or machine and written to disk unchanged.
Backends, tasks and metrics exchange only these, never live objects.
"""

from __future__ import annotations

import json
from dataclasses import MISSING
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from typing import Any
from typing import TypeVar

JSON = dict[str, Any]
R = TypeVar("R")


class _Factory:
    """Marks a parameter whose default comes from a factory (shown as dataclasses show it)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def _fast_init(cls: type[R]) -> type[R]:
    """Give a frozen dataclass an ``__init__`` that fills the instance's ``__dict__`` directly.

    The generated one calls ``object.__setattr__`` once per field to get past ``frozen``: six
    records made per sample cost ~9 us that way, a quarter of the core's per-sample time. Same
    signature, defaults and factories; instances stay immutable (``__setattr__`` still raises).
    """
    source, namespace = _init_source(cls)
    exec(source, namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = cls.__init__.__annotations__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def _init_source(cls: type) -> tuple[str, dict[str, Any]]:
    """The ``__init__`` source for ``cls``'s fields, and the defaults it refers to."""
    args: list[str] = []
    namespace: dict[str, Any] = {"FACTORY": _FACTORY}
    lines = []
    for f in fields(cls):
        if f.default is not MISSING:
            namespace[f"_d_{f.name}"] = f.default
            args.append(f"{f.name}=_d_{f.name}")
        elif f.default_factory is not MISSING:
            namespace[f"_f_{f.name}"] = f.default_factory
            args.append(f"{f.name}=FACTORY")
            lines.append(f"  if {f.name} is FACTORY: {f.name} = _f_{f.name}()")
        else:
            args.append(f.name)
    values = ", ".join(f"{f.name!r}: {f.name}" for f in fields(cls))
    lines.append(f"  self.__dict__.update({{{values}}})")
    return f"def __init__(self, {', '.join(args)}):\n" + "\n".join(lines), namespace


@_fast_init
@dataclass(frozen=True)
class ToolCall:
    """One function call: the name and the decoded arguments (never a JSON string)."""

    name: str
    arguments: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        return {"name": self.name, "arguments": self.arguments}

    def to_openai(self, call_id: str | None = None) -> JSON:
        """OpenAI's wire shape: ``{"id", "type": "function", "function": {name, arguments}}``
        with the arguments as a JSON string."""
        arguments = json.dumps(self.arguments, ensure_ascii=False)
        function = {"name": self.name, "arguments": arguments}
        return {"id": call_id, "type": "function", "function": function}

    @classmethod
    def from_openai(cls, item: Any) -> ToolCall:
        """Read ``{"name", "arguments"}`` or OpenAI's ``{"function": {"name", "arguments"}}``,
        with the arguments as an object or a JSON string (empty means no arguments).

        Model output is untrusted: anything else raises :class:`ValueError` saying why.
        """
        body = item.get("function", item) if isinstance(item, dict) else None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise ValueError(f"a tool call needs a string 'name': {_short(item)}")
        arguments = body.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"arguments of {body['name']!r} are not valid JSON: {exc}"
                ) from None
        if not isinstance(arguments, dict):
            raise ValueError(f"arguments of {body['name']!r} are not a JSON object")
        return cls(name=body["name"], arguments=arguments)


@_fast_init
@dataclass(frozen=True)
class Message:
    """One chat message, in the OpenAI chat shape (``role`` is system/user/assistant/tool)."""

    role: str
    content: str | None = None
    tool_calls: tuple[ToolCall, ...] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def to_dict(self) -> JSON:
        out: JSON = {"role": self.role, "content": self.content}
        if self.tool_calls is not None:
            out["tool_calls"] = [c.to_dict() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, data: JSON) -> Message:
        calls = data.get("tool_calls")
        return cls(
            role=data["role"],
            content=data.get("content"),
            tool_calls=None if calls is None else tuple(ToolCall.from_openai(c) for c in calls),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
        )


@_fast_init
@dataclass(frozen=True)
class GenerationParams:
    """How to generate. ``None`` means "the backend's default"; ``extra`` is backend-specific."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    extra: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        return asdict(self) | {"stop": list(self.stop)}


@_fast_init
@dataclass(frozen=True)
class ChatRequest:
    """One model call.

    ``tools`` are OpenAI-style function tools (``{"type": "function", "function": {name,
    description, parameters}}``) whose ``parameters`` are JSON Schema. ``tool_choice`` follows
    OpenAI (``"auto"``, ``"none"``, ``"required"`` or a named function). ``sample_id`` and
    ``task`` identify the sample for backends that look answers up (replay, caches).

    ``mode`` says how tool calls are asked for: ``"prompt"`` (the functions are described in
    the messages and the answer is text; ``tools`` is None), ``"native"`` (``tools`` go to the
    model's own tool-calling interface) or ``"constrained"`` (as native, and the backend must
    force a well-formed call list over ``tools``, or no call, e.g. with a grammar). ``None``:
    no tools involved.
    """

    messages: tuple[Message, ...]
    tools: tuple[JSON, ...] | None = None
    tool_choice: str | JSON | None = None
    params: GenerationParams = field(default_factory=GenerationParams)
    task: str | None = None
    sample_id: str | None = None
    mode: str | None = None

    def to_dict(self) -> JSON:
        return {
            "messages": [m.to_dict() for m in self.messages],
            "tools": None if self.tools is None else list(self.tools),
            "tool_choice": self.tool_choice,
            "params": self.params.to_dict(),
            "task": self.task,
            "sample_id": self.sample_id,
            "mode": self.mode,
        }


@_fast_init
@dataclass(frozen=True)
class ChatResponse:
    """What a backend answered: raw text, native tool calls if any, token counts and timings.

    ``timing`` holds seconds (``total_s`` always; streaming local backends add ``ttft_s``).
    Token counts come from the model's tokenizer, never from counting words.
    """

    text: str | None
    tool_calls: tuple[ToolCall, ...] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish_reason: str | None = None
    timing: dict[str, float] = field(default_factory=dict)
    extra: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        return {
            "text": self.text,
            "tool_calls": None
            if self.tool_calls is None
            else [c.to_dict() for c in self.tool_calls],
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "finish_reason": self.finish_reason,
            "timing": dict(self.timing),
            "extra": dict(self.extra),
        }


@_fast_init
@dataclass(frozen=True)
class Sample:
    """One item of a task: what to ask, which tools to offer, what counts as right."""

    id: str
    messages: tuple[Message, ...]
    tools: tuple[JSON, ...] | None = None
    target: Any = None
    metadata: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        return {
            "id": self.id,
            "messages": [m.to_dict() for m in self.messages],
            "tools": None if self.tools is None else list(self.tools),
            "target": self.target,
            "metadata": self.metadata,
        }


@_fast_init
@dataclass(frozen=True)
class Outcome:
    """How a sample was played: the final raw text, decoded calls and every model response.

    ``error`` is set when the sample could not be scored (no answer, decode failure that the
    task treats as fatal, backend error); metrics still see the outcome and may score it 0.
    """

    output: str | None
    calls: tuple[ToolCall, ...] | None = None
    responses: tuple[ChatResponse, ...] = ()
    error: str | None = None
    fields: JSON = field(default_factory=dict)


@_fast_init
@dataclass(frozen=True)
class Score:
    """What one metric says about one sample.

    ``values`` are numbers that aggregate (mean by default); ``labels`` become extra fields of
    the sample's record (for example ``{"patterns": ["IAV"]}``).
    """

    values: dict[str, float]
    labels: JSON = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """What lifecycle hooks learn about a run."""

    run_dir: str
    name: str
    manifest: JSON
    already_finished: int = 0


@dataclass(frozen=True)
class SampleRecord:
    """One line of ``samples.jsonl``: one (backend, task, sample) result."""

    backend: str
    task: str
    sample_id: str
    output: str | None
    calls: list[JSON] | None
    scores: dict[str, float]
    error: str | None
    timing: dict[str, float]
    target: Any = None
    extra: JSON = field(default_factory=dict)

    def to_dict(self) -> JSON:
        out: JSON = {
            "backend": self.backend,
            "task": self.task,
            "sample_id": self.sample_id,
            "output": self.output,
            "calls": self.calls,
            "scores": self.scores,
            "error": self.error,
            "timing": self.timing,
            "target": self.target,
        }
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: JSON) -> SampleRecord:
        """The inverse of :meth:`to_dict`: unknown fields go to ``extra``."""
        known = ("backend", "task", "sample_id", "output", "calls", "scores", "error", "timing")
        extra = {k: v for k, v in data.items() if k not in (*known, "target")}
        return cls(
            **{k: data.get(k) for k in known},  # type: ignore[arg-type]
            target=data.get("target"),
            extra=extra,
        )


# --- what lifecycle hooks receive -------------------------------------------------------------


@dataclass(frozen=True)
class RunStarted:
    """``on_run_start``: a run (or a resumed run) is about to play its first sample.

    ``to_play`` is how many samples are left, when every task can say its size (else None).
    """

    run: RunInfo
    to_play: int | None = None


@dataclass(frozen=True)
class SampleFinished:
    """``on_sample_finished``: one sample's record was appended to ``samples.jsonl``.

    ``record`` is what was written (secrets already redacted).
    """

    run: RunInfo
    record: SampleRecord


@dataclass(frozen=True)
class RunEnded:
    """``on_run_end``: a run stopped. ``status`` is ``finished``, ``failed`` or ``interrupted``;
    ``results`` is the content of ``results.json`` when it finished, else None; ``error`` says
    why a failed run stopped."""

    run: RunInfo
    status: str
    results: JSON | None = None
    played: int = 0
    skipped: int = 0
    error: str | None = None


@dataclass(frozen=True)
class ReportSection:
    """One section a plugin adds to ``report.html`` (hook ``report_sections``).

    ``html`` is a fragment the plugin built and escaped itself (``DataFrame.to_html`` does);
    sections appear in ``order`` (then by title) after the core's score tables.
    """

    title: str
    html: str
    order: int = 100


def _short(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."
