"""Hooks and parameters of the APIGen plugin: task ``apigen`` and metric ``apigen_match``
(function calling over an APIGen / xlam-function-calling-60k format file, built from
:mod:`harness_plugins.apigen._task`), and APIGen's three verification stages as metrics
``apigen_format``, ``apigen_execution`` and ``apigen_semantic`` (built from
:mod:`harness_plugins.apigen._checks`). Both modules are imported lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from typing import Literal

from harness import Params
from harness import Register
from harness import ToolCall
from harness import formats_param
from harness import hookimpl
from harness import param


@hookimpl
def register_tasks(register: Register) -> None:
    register("apigen", "harness_plugins.apigen._task:APIGenTask", params=APIGenTaskParams)


@hookimpl
def register_metrics(register: Register) -> None:
    register("apigen_format", "harness_plugins.apigen._checks:APIGenFormat", params=FormatParams)
    register(
        "apigen_execution", "harness_plugins.apigen._checks:APIGenExecution", params=ExecutionParams
    )
    register(
        "apigen_semantic", "harness_plugins.apigen._checks:APIGenSemantic", params=SemanticParams
    )
    register(
        "apigen_match",
        "harness_plugins.apigen._task:APIGenMatch",
        description="APIGen answers matched one to one (order-insensitive).",
    )


Mode = Literal["prompt", "native", "constrained"]


#: The prompt-format axes of the apigen task (prompt mode): where xLAM's task instruction and
#: tools go (``user``: xLAM's one sectioned user message; ``system``: instruction and tools in a
#: system message, format instruction and query in the user message), and how the tools are
#: written (``xlam``: APIGen's own ``{name, description, parameters}``; ``openai``: the OpenAI
#: tools with JSON Schema parameters that native mode sends).
FORMAT_AXES: dict[str, tuple[str, ...]] = {
    "tools_in": ("user", "system"),
    "tool_format": ("xlam", "openai"),
}


class APIGenTaskParams(Params):
    """Function calling over an APIGen / xlam-function-calling-60k format file."""

    path: str = param(
        description="JSON array or JSON Lines of {id, query, tools, answers}.", format="file"
    )
    limit: int | None = param(None, minimum=1, description="Play only the first N items.")
    mode: Mode = param("prompt", description="How calls are asked for (see the bfcl task).")
    decoder: str | None = param(
        None, description="Decoder name (default: xlam in prompt mode, else openai_tool_calls)."
    )
    max_tokens: int = param(512, minimum=1)
    temperature: float = param(0, minimum=0)
    formats: list[str] | None = formats_param(
        FORMAT_AXES,
        description="Prompt mode: play every item under these prompt configurations (a "
        "format-sensitivity probe; 'all': the 4 combinations of tools_in and tool_format). "
        "Unset: xLAM's prompt only, as always.",
        optional=True,
    )


class FormatParams(Params):
    """APIGen stage 1: decodes, known names, required arguments, types."""

    toolset: str | None = param(
        None,
        description="Tool set that executes the calls when a sample names none "
        "(sample.metadata['toolset'] wins); see harness_plugins.shared.toolsets.",
    )


class ExecutionParams(FormatParams):
    """APIGen stage 2: the calls run in the sandbox without error."""

    timeout_s: float = param(
        5, exclusive_minimum=0, maximum=60, description="Wall-clock limit per call, seconds."
    )
    memory_mb: int = param(
        256,
        minimum=64,
        maximum=4096,
        description="Address-space limit of the sandboxed child, MiB.",
    )


class JudgeParams(Params):
    """The judge of the ``apigen_semantic`` metric."""

    judge: dict[str, Any] = param(
        description="A backend entry as in the manifest's backends list, e.g. "
        "{type: openai, model: ...} or {type: llamacpp, model: ...}.",
        schema={
            "properties": {"type": {"type": "string"}},
            "required": ["type"],
            "additionalProperties": True,
        },
    )
    max_tokens: int = param(512, minimum=16, description="Generation budget of the judge.")


class SemanticParams(ExecutionParams, JudgeParams):
    """APIGen stage 3: an LLM judge (any backend) on query, calls and results."""


# --- what other plugins may use (SpecTool reads APIGen records and reuses the matching) ------


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """A JSON array, or JSON Lines; ``tools`` and ``answers`` decoded when they are strings."""
    from ._task import read_records as read

    return read(path)


def openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An APIGen tool spec as an OpenAI tool with a JSON Schema for its parameters."""
    from ._task import openai_tool as convert

    return convert(tool)


def match_calls(
    calls: list[ToolCall], answers: list[dict[str, Any]], tools: list[dict[str, Any]]
) -> str:
    """Order-insensitive one-to-one matching of calls to answers; ``""`` when all match."""
    from ._task import match_calls as match

    return match(calls, answers, tools)
