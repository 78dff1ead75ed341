"""Hooks and parameters of the BFCL plugin: task ``bfcl`` and metric ``bfcl_ast`` (built from
:mod:`harness_plugins.bfcl._task`, imported lazily), the multi-turn environment and metric
``bfcl_multi_turn`` (:mod:`harness_plugins.bfcl._mt_env`, for the ``agent`` task), and the
report's "Failures by error type" section."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from typing import Literal
from typing import get_args

from harness import Outcome
from harness import Params
from harness import Register
from harness import ReportSection
from harness import RunView
from harness import Sample
from harness import formats_param
from harness import hookimpl
from harness import param


@hookimpl
def register_tasks(register: Register) -> None:
    register("bfcl", "harness_plugins.bfcl._task:BFCLTask", params=BFCLTaskParams)
    register(
        "bfcl_format",
        "harness_plugins.bfcl._format_task:BFCLFormatTask",
        params=BFCLFormatTaskParams,
    )


@hookimpl
def report_sections(run: RunView) -> list[ReportSection]:
    from ._report import sections

    return sections(run)


@hookimpl
def register_metrics(register: Register) -> None:
    register("bfcl_ast", "harness_plugins.bfcl._task:BFCLAst", params=BFCLAstParams)
    register(
        "bfcl_multi_turn",
        "harness_plugins.bfcl._mt_env:BFCLMultiTurnMetric",
        params=BFCLMultiTurnMetricParams,
    )


@hookimpl
def register_environments(register: Register) -> None:
    register(
        "bfcl_multi_turn", "harness_plugins.bfcl._mt_env:BFCLMultiTurn", params=BFCLMultiTurnParams
    )


#: Categories whose answers are checked against ground truth (python AST categories).
AstCategory = Literal[
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
]
#: Categories with no ground truth: the answer is right when there is (no) call.
RelevanceCategory = Literal["irrelevance", "live_irrelevance", "live_relevance"]
Category = Literal[AstCategory, RelevanceCategory]
Mode = Literal["prompt", "native", "constrained"]
#: BFCL's multi-turn categories (played as conversations by the ``agent`` task).
MultiTurnCategory = Literal[
    "multi_turn_base",
    "multi_turn_miss_func",
    "multi_turn_miss_param",
    "multi_turn_long_context",
]


class BFCLTaskParams(Params):
    """BFCL single-turn function calling on BFCL's own data (bfcl-eval wheel)."""

    categories: list[Category] = param(
        ["simple_python"],
        description="BFCL category names to run, in this order.",
        schema={"minItems": 1, "uniqueItems": True},
    )
    limit: int | None = param(
        None, minimum=1, description="Play only the first N entries of each category."
    )
    mode: Mode = param(
        "prompt", description="How calls are asked for: prompt, native or constrained."
    )
    decoder: str | None = param(
        None,
        description="Decoder name (default: python_calls for prompt mode, "
        "openai_tool_calls otherwise); see `harness plugins --kind decoder`.",
    )
    max_tokens: int = param(512, minimum=1, description="Generation budget per answer.")
    temperature: float = param(0.001, minimum=0, description="BFCL's own default is 0.001.")
    single_call_cap: bool = param(
        False,
        description="Constrained mode: allow at most one call in the categories BFCL "
        "defines as single-call (simple, multiple, (ir)relevance); parallel ones are uncapped.",
    )


#: BFCL's prompt-format axes (``get_all_format_sensitivity_configs``), with BFCL's names.
PROMPT_AXES: dict[str, tuple[str, ...]] = {
    "ret_fmt": ("python", "json", "verbose_xml", "concise_xml"),
    "tool_call_tag": ("True", "False"),
    "func_doc_fmt": ("python", "xml", "json"),
    "prompt_fmt": ("plaintext", "markdown"),
    "style": ("classic", "experimental"),
}
#: What varies in native and constrained modes: the tool schema's style, BFCL's language note.
NATIVE_AXES: dict[str, tuple[str, ...]] = {
    "schema": ("bfcl", "json_schema"),
    "doc_hint": ("True", "False"),
}


#: The categories of BFCL's format_sensitivity id map, in its order.
FORMAT_ID_ORDER: tuple[AstCategory, ...] = (
    "simple_python",
    "parallel",
    "multiple",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)


class BFCLFormatTaskParams(BFCLTaskParams):
    """BFCL V4's format-sensitivity probe: the entries of its ``format_sensitivity`` id map
    (200 single-turn ids) played under each named prompt configuration."""

    categories: list[AstCategory] = param(
        list(FORMAT_ID_ORDER),
        description="Categories of BFCL's format_sensitivity id map to play, in this order "
        "(by default all eight, in the id map's order, as BFCL plays them).",
        schema={"minItems": 1, "uniqueItems": True},
    )
    limit: int | None = param(
        None, minimum=1, description="Play only the first N ids of each category."
    )
    formats: list[str] = formats_param(
        PROMPT_AXES | NATIVE_AXES,
        description="Configurations to play: 'all' (prompt mode: BFCL's 26; native and "
        "constrained: the 4 combinations of schema and doc_hint), full names "
        "('ret_fmt=json&tool_call_tag=True&func_doc_fmt=xml&prompt_fmt=plaintext"
        "&style=classic') or partial ones ('ret_fmt=json': every configuration of the set "
        "with that value).",
    )


class BFCLAstParams(Params):
    """BFCL's AST verdict per sample: accuracy 1 or 0, with BFCL's error_type."""

    matching: Literal["greedy", "optimal"] = param(
        "greedy",
        description="Parallel-call matching. 'optimal' is not BFCL's rule and is "
        "reported as accuracy_optimal, never as accuracy.",
    )


class BFCLMultiTurnParams(Params):
    """BFCL's multi-turn entries as conversations for the ``agent`` task: each call runs on
    BFCL's own API classes, an answer in words ends a turn, BFCL's checker gives success."""

    categories: list[MultiTurnCategory] = param(
        list(get_args(MultiTurnCategory)),
        description="BFCL multi-turn categories to play (each one is the episodes' split).",
        schema={"minItems": 1, "uniqueItems": True},
    )
    limit: int | None = param(
        None, minimum=1, description="Play only the first N entries of each category."
    )
    mode: Mode = param(
        "prompt",
        description="The agent's mode. prompt: at a miss_func held-out turn the new functions' "
        "docs are written into the user message, as BFCL's prompting handlers do (harmless in "
        "the other modes); native/constrained: only BFCL's stock message, the functions "
        "arrive as tools.",
    )


class BFCLMultiTurnMetricParams(Params):
    """BFCL's multi-turn verdict per episode: accuracy 1 or 0, with BFCL's error_type."""


# --- what other plugins may use (SpecTool builds probes from BFCL and reuses its checker) -------


def entries(category: str) -> Iterator[tuple[dict[str, Any], Any]]:
    """BFCL's entries of one category with their ground truth, from the bfcl-eval wheel."""
    from ._data import entries as read

    return read(category)


def verdict(sample: Sample, outcome: Outcome) -> tuple[bool, str]:
    """BFCL's AST verdict on a ``bfcl`` task sample: (right?, BFCL's error type)."""
    from ._task import BFCLAst

    result = BFCLAst.verdict(sample, outcome)
    return result.valid, result.error_type
