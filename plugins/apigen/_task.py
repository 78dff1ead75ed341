"""The ``apigen`` task and the ``apigen_match`` metric: function calling over an APIGen-format
file.

The file is the record format of APIGen's released data (``xlam-function-calling-60k``): a JSON
array (or JSON Lines) of ``{"id", "query", "tools", "answers"}``, where ``tools`` and
``answers`` are JSON-encoded strings (lists are accepted too). Tool parameters are a flat map
``name -> {"description", "type", "default"}`` with Python-style type names (``str``,
``List[int]``, ``Dict[str, Any]``) and ``", optional"`` marking optional parameters.

Prompt mode uses xLAM's sectioned prompt and its ``{"tool_calls": [...]}`` answer format
(decoder ``xlam``); native and constrained modes pass the tools as OpenAI tools.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import GenerationParams
from harness import InputError
from harness import Message
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import Task
from harness import ToolCall
from harness import format_name
from harness import parse_format
from harness import parse_json
from harness import read_jsonl
from harness import select_formats

from . import FORMAT_AXES

if TYPE_CHECKING:
    from collections.abc import Iterator

    from . import APIGenTaskParams

#: xLAM's own prompt: one sectioned user message, the tools as APIGen records.
DEFAULT_FORMAT = "tools_in=user&tool_format=xlam"
_GRID = [(t, f) for t in FORMAT_AXES["tools_in"] for f in FORMAT_AXES["tool_format"]]

TASK_INSTRUCTION = (
    "You are an expert in composing functions. You are given a question and a set of possible "
    "functions. Based on the question, you will need to make one or more function/tool calls to "
    "achieve the purpose. If none of the functions can be used, point it out and refuse to "
    "answer. If the given question lacks the parameters required by the function, also point it "
    "out."
)
FORMAT_INSTRUCTION = (
    "The output MUST strictly adhere to the following JSON format, and NO other text MUST be "
    "included.\nThe example format is as follows. Please make sure the parameter type is "
    "correct. If no function call is needed, please make tool_calls an empty list '[]'.\n```\n"
    '{\n    "tool_calls": [\n    {"name": "func_name1", "arguments": {"argument1": "value1", '
    '"argument2": "value2"}},\n    ... (more tool calls as required)\n    ]\n}\n```'
)

JSON_TYPES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "list": "array",
    "tuple": "array",
    "dict": "object",
    "set": "array",
}


def parse_type(text: str) -> tuple[str | None, bool]:
    """``"List[int], optional"`` -> (``"array"``, optional). Unknown types give None (any)."""
    optional = bool(re.search(r",\s*optional\s*$", text or ""))
    base = re.sub(r",\s*optional\s*$", "", text or "").strip()
    head = re.split(r"[\[\s|]", base, maxsplit=1)[0].lower()
    return JSON_TYPES.get(head), optional


def openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An APIGen tool spec as an OpenAI tool with a JSON Schema for its parameters."""
    properties, required = {}, []
    for name, spec in (tool.get("parameters") or {}).items():
        kind, optional = parse_type(str(spec.get("type", "")))
        prop: dict[str, Any] = {"description": spec.get("description", "")}
        if kind:
            prop["type"] = kind
        properties[name] = prop
        if not optional:
            required.append(name)
    schema = {"type": "object", "properties": properties, "required": required}
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool.get("description", ""),
            "parameters": schema,
        },
    }


def _decoded(value: Any, where: str) -> Any:
    return parse_json(value, where) if isinstance(value, str) else value


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """A JSON array, or JSON Lines; ``tools`` and ``answers`` decoded when they are strings."""
    with path.open("rb") as handle:
        whole_array = handle.read(4096).lstrip().startswith(b"[")
    if whole_array:
        rows = parse_json(path.read_bytes(), str(path))
    else:
        rows = [row for _, row in read_jsonl(path)]
    for index, row in enumerate(rows):
        where = f"{path}: item {index}"
        for key in ("query", "tools", "answers"):
            if not isinstance(row, dict) or key not in row:
                raise InputError(
                    f"{where}: missing field {key!r} (APIGen records need query, tools and answers)"
                )
        yield {
            **row,
            "tools": _decoded(row["tools"], f"{where}.tools"),
            "answers": _decoded(row["answers"], f"{where}.answers"),
        }


class APIGenTask(Task):
    """One APIGen record per sample; the target is its list of answers."""

    default_metrics = ("apigen_match",)
    params: APIGenTaskParams

    def __init__(self, params: APIGenTaskParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self.path = Path(params.path)
        self.mode = params.mode
        default = "xlam" if self.mode == "prompt" else "openai_tool_calls"
        self.decoder = context.build("decoder", params.decoder or default)
        self.formats = _selected(params, context.id)

    def samples(self) -> Iterator[Sample]:
        limit = self.params.limit
        for index, row in enumerate(read_records(self.path)):
            if limit is not None and index >= limit:
                return
            item = str(row.get("id", index))
            for name in self.formats or [None]:
                yield self._sample(row, item, name)

    def _sample(self, row: dict[str, Any], item: str, name: str | None) -> Sample:
        """One item as asked; under a probe configuration its id is ``<configuration>:<id>``."""
        tools = tuple(openai_tool(t) for t in row["tools"])
        metadata: dict[str, Any] = {"tools": row["tools"]}
        if name is not None:
            metadata |= {"format": name, "item": item}
        return Sample(
            id=item if name is None else f"{name}:{item}",
            messages=self._messages(row, parse_format(name or DEFAULT_FORMAT)),
            tools=None if self.mode == "prompt" else tools,
            target=row["answers"],
            metadata=metadata,
        )

    def _messages(self, row: dict[str, Any], config: dict[str, str]) -> tuple[Message, ...]:
        if self.mode != "prompt":
            return (Message("user", row["query"]),)
        tools = _shown_tools(row["tools"], config["tool_format"])
        instruction = (
            f"[BEGIN OF TASK INSTRUCTION]\n{TASK_INSTRUCTION}\n[END OF TASK INSTRUCTION]\n\n"
        )
        available = f"[BEGIN OF AVAILABLE TOOLS]\n{json.dumps(tools)}\n[END OF AVAILABLE TOOLS]\n\n"
        rest = (
            f"[BEGIN OF FORMAT INSTRUCTION]\n{FORMAT_INSTRUCTION}\n[END OF FORMAT INSTRUCTION]\n\n"
            f"[BEGIN OF QUERY]\n{row['query']}\n[END OF QUERY]\n"
        )
        if config["tools_in"] == "system":
            return (
                Message("system", (instruction + available).rstrip("\n")),
                Message("user", rest),
            )
        return (Message("user", instruction + available + rest),)

    def format_axes(self) -> dict[str, tuple[str, ...]]:
        return dict(FORMAT_AXES) if self.formats else {}

    def request(self, sample: Sample) -> ChatRequest:
        p = self.params
        gen = GenerationParams(
            max_tokens=p.max_tokens, temperature=p.temperature, seed=self.context.seed
        )
        return ChatRequest(
            messages=sample.messages,
            tools=sample.tools,
            params=gen,
            tool_choice="auto" if sample.tools else None,
            mode=self.mode,
        )

    def decode(self, sample: Sample, response: ChatResponse) -> Outcome:
        fields: dict[str, Any] = {"mode": self.mode}
        if "format" in sample.metadata:
            name = sample.metadata["format"]
            fields |= {"subtask": name, "format": name, "format_item": sample.metadata["item"]}
        return self.decoder.outcome(response, fields)

    def data_files(self) -> list[Path]:
        return [self.path]


def _selected(params: APIGenTaskParams, task_id: str) -> list[str]:
    """The probe's configurations (none unless ``formats`` is set; prompt mode only)."""
    if params.formats is None:
        return []
    if params.mode != "prompt":
        raise InputError(
            f"task {task_id!r}: formats: the apigen task's format axes are prompt-mode ones; "
            "remove formats or set mode: prompt"
        )
    own = [format_name({"tools_in": t, "tool_format": f}, FORMAT_AXES) for t, f in _GRID]
    try:
        return select_formats(params.formats, FORMAT_AXES, own)
    except InputError as exc:
        raise InputError(f"task {task_id!r}: {exc}") from None


def _shown_tools(tools: list[dict[str, Any]], style: str) -> list[dict[str, Any]]:
    """The tools as the prompt lists them: xLAM's own records, or the OpenAI tools."""
    if style == "openai":
        return [openai_tool(t) for t in tools]
    return [
        {
            "name": t["name"],
            "description": t.get("description", ""),
            "parameters": t.get("parameters", {}),
        }
        for t in tools
    ]


# --- scoring ----------------------------------------------------------------------------------


def _same(value: Any, expected: Any) -> bool:
    """Equal, with ints and floats compared as numbers and strings stripped."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected if isinstance(expected, bool) else False
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(value) == float(expected)
    if isinstance(expected, str) and isinstance(value, str):
        return value.strip() == expected.strip()
    if isinstance(expected, list) and isinstance(value, list | tuple):
        return len(value) == len(expected) and all(map(_same, value, expected))
    if isinstance(expected, dict) and isinstance(value, dict):
        return value.keys() == expected.keys() and all(
            _same(value[k], expected[k]) for k in expected
        )
    return value == expected


def check_call(call: ToolCall, expected: dict[str, Any], tools: list[dict]) -> str:
    """``""`` when ``call`` matches the expected call, else an error type."""
    if call.name != expected["name"]:
        return "wrong_func_name"
    wanted = expected.get("arguments") or {}
    for name, value in wanted.items():
        if name not in call.arguments:
            return "missing_argument"
        if not _same(call.arguments[name], value):
            return "value_error"
    spec = next((t for t in tools if t["name"] == call.name), {}).get("parameters") or {}
    for name in call.arguments.keys() - wanted.keys():
        if name not in spec or not parse_type(str(spec[name].get("type", "")))[1]:
            return "unexpected_param"
        if str(call.arguments[name]) != str(spec[name].get("default", "")):
            return "value_error"
    return ""


def match_calls(calls: list[ToolCall], answers: list[dict], tools: list[dict]) -> str:
    """Order-insensitive one-to-one matching (augmenting paths); ``""`` when all match."""
    if len(calls) != len(answers):
        return "wrong_count"
    verdicts = [[check_call(c, a, tools) for c in calls] for a in answers]
    owner: list[int | None] = [None] * len(calls)

    def assign(i: int, seen: set[int]) -> bool:
        for j, verdict in enumerate(verdicts[i]):
            if verdict == "" and j not in seen:
                seen.add(j)
                if owner[j] is None or assign(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    for i in range(len(answers)):
        if not assign(i, set()):
            return next((v for v in verdicts[i] if v), "cannot_find_match")
    return ""


class APIGenMatch(Metric):
    """1 when the decoded calls match the answers one to one, else 0, with an error type."""

    counted_labels = ("error_type",)  # the report's "Failures by error type"

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        if outcome.calls is None:
            error = "decoder_failed"
        else:
            error = match_calls(list(outcome.calls), sample.target, sample.metadata["tools"])
        return Score(values={"accuracy": 0.0 if error else 1.0}, labels={"error_type": error})
