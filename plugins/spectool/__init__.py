"""Hooks and parameters of the SpecTool plugin: task ``spectool`` and metrics
``spectool_success``, ``spectool`` and ``spectool-compat`` (built from the private modules,
imported lazily), and the report's SpecTool section."""

from __future__ import annotations

from typing import Any
from typing import Literal
from typing import get_args

from harness import Params
from harness import Register
from harness import ReportSection
from harness import RunView
from harness import hookimpl
from harness import param


@hookimpl
def register_tasks(register: Register) -> None:
    register("spectool", "harness_plugins.spectool._task:SpecToolTask", params=SpecToolTaskParams)


def trajectory_patterns(
    turns: list[dict[str, Any]], tools: list[dict[str, Any]], cap: int
) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """SpecTool's patterns in an agent protocol trajectory (its per-turn records) over the
    environment's tools, with no expected calls (so IFE, IFN, IAN, IAT and RAC): the codes
    found, the count of each, and the denominators (``steps``, ``calls``)."""
    from ._patterns import classify_trajectory
    from ._patterns import functions_from_any
    from ._patterns import steps_from_any
    from ._task import legacy_steps

    steps = steps_from_any(legacy_steps(turns, cap))
    result = classify_trajectory(steps, functions_from_any(tools), None)
    return result.patterns, result.counts, result.denominators


@hookimpl
def report_sections(run: RunView) -> list[ReportSection]:
    from . import _report

    return _report.sections(run)


@hookimpl
def register_metrics(register: Register) -> None:
    register(
        "spectool_success",
        "harness_plugins.spectool._task:SpecToolSuccess",
        description="A probe episode ran every expected call and finished.",
    )
    register("spectool", "harness_plugins.spectool._metric:SpecTool", params=SpecToolParams)
    register(
        "spectool-compat",
        "harness_plugins.spectool._metric:SpecToolCompat",
        params=SpecToolCompatParams,
    )


#: How seeds become probes (see :mod:`harness_plugins.spectool._probes`).
Augmentation = Literal[
    "seed", "constraint", "paraphrase", "irrelevant", "multi_call", "similar_names"
]


class SpecToolTaskParams(Params):
    """SpecTool-style probes (from BFCL and APIGen-format seeds, augmented) played as multi-step
    episodes over executable tool sets, with validator feedback on or off."""

    sources: list[Literal["bfcl", "apigen"]] = param(
        ["bfcl", "apigen"], description="Where seeds come from."
    )
    apigen_path: str | None = param(
        None, format="file", description="APIGen-format seed file (default: the shipped one)."
    )
    augmentations: list[Augmentation] = param(list(get_args(Augmentation)))
    toolsets: list[str] | None = param(
        None, description="Only probes over these tool sets (default: all)."
    )
    limit: int | None = param(None, minimum=1, description="Play the first N probes.")
    mode: Literal["prompt", "native", "constrained"] = param("native")
    decoder: str | None = param(
        None, description="Default: python_calls in prompt mode, else openai_tool_calls."
    )
    feedback: bool = param(
        True, description="Validator messages as observations (SpecTool's feedback)."
    )
    max_steps: int = param(10, minimum=1, maximum=50)
    max_tokens: int = param(256, minimum=1)
    max_calls_per_step: int = param(
        3,
        minimum=1,
        description="At most this many calls run per model turn, in every mode (constrained "
        "mode also enforces it in the grammar); the model is told about the rest.",
    )
    call_timeout_s: float = param(5, minimum=0.1)
    deadline_s: float = param(
        120,
        exclusive_minimum=0,
        description="Wall-clock limit of one probe episode; once passed, the episode ends "
        "after its current step and the record says so (deadline: true).",
    )


class SpecToolParams(Params):
    """SpecTool's seven error patterns per failed tool-use answer (corrected definitions); adds a
    `patterns` field to every record."""

    trust_task_verdict: bool = param(
        True,
        description="When the task's own checker (bfcl_ast, apigen_match) says the "
        "answer is right, report no pattern.",
    )
    max_evidence: int = param(
        20, minimum=1, description="At most this many evidence items per sample."
    )


class SpecToolCompatParams(Params):
    """SpecTool's scores as the paper's code computes them (N = 10 steps, missing required as IAN,
    exact-dict IAV); for comparison with its tables only."""

    max_steps: int = param(
        10, minimum=1, description="N in (N - errors) / N; the paper hard-codes 10."
    )
