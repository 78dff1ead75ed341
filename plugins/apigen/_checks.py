"""APIGen's three verification stages as metrics: ``apigen_format``, ``apigen_execution`` and
``apigen_semantic`` (arXiv 2406.18518, section 3.2).

The stages are hierarchical, as in APIGen: a sample that fails an earlier stage fails every
later one (scored 0, with the reason in the labels, and no sandbox run or judge call is spent
on it). Each stage reports one value per sample, ``format_pass``, ``execution_pass`` and
``semantic_pass`` (1 or 0), so ``results.json`` shows each stage's pass rate as their mean.
A stage that cannot apply to a sample (no tool set to execute against; a judge answer that
could not be read) leaves its value out instead of scoring 0: the mean is then over the
samples it applied to, and the labels say why the others were skipped.

Which functions count as offered: ``sample.metadata["tools"]`` (APIGen specs, as the
``apigen`` task sets them), else ``sample.tools`` (OpenAI tools), else the tool set's specs.
Which tool set executes the calls: ``sample.metadata["toolset"]``, else the metric's
``toolset`` parameter. Calls run only through :func:`harness_plugins.shared.sandbox.run_call`.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING
from typing import Any

from harness_plugins.shared.sandbox import check_arguments
from harness_plugins.shared.sandbox import data_problem
from harness_plugins.shared.sandbox import run_call
from harness_plugins.shared.toolsets import get_toolset

from harness import BuildContext
from harness import ChatRequest
from harness import GenerationParams
from harness import Message
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import ToolCall

from ._task import openai_tool

if TYPE_CHECKING:
    from . import ExecutionParams
    from . import FormatParams
    from . import SemanticParams

SEMANTIC_PROMPT_VERSION = "apigen-semantic/1"
SEMANTIC_PROMPT = """\
As a data quality evaluator, assess whether the function calls below correctly answer the user \
query, given the available functions and the results of executing the calls.

Fail the calls ("pass": "no") if any of these holds:
1. The function calls do not serve the objective of the user query, or their arguments look wrong.
2. The functions or their arguments are not properly chosen from the available functions.
3. The number of function calls does not match the user's intentions.
4. The execution results are irrelevant to, or inconsistent with, the purpose of the functions.
5. The execution results contain errors or show that the calls did not run successfully.

Keep in mind:
- A query may contain several intentions; calls that address all of them are correct.
- Functions may be simplified placeholders and results may be truncated; neither alone is a \
reason to fail.

Available functions:
{functions}

User query:
{query}

Function calls:
{calls}

Execution results:
{results}

Answer with one JSON object and nothing else, in exactly this format:
{{"thought": "<one or two sentences of reasoning>", "pass": "yes" or "no"}}
"""

# --- stage 1: format --------------------------------------------------------------------------


def offered_functions(sample: Sample, toolset: str | None) -> dict[str, dict[str, Any]]:
    """Function name -> JSON-Schema ``parameters`` of what the sample offered the model."""
    if sample.metadata.get("tools"):
        specs = [openai_tool(t)["function"] for t in sample.metadata["tools"]]
    elif sample.tools:
        specs = [t.get("function", t) for t in sample.tools]
    elif toolset:
        specs = list(get_toolset(toolset).functions)
    else:
        specs = []
    return {s["name"]: s.get("parameters") or {} for s in specs}


def format_errors(calls: tuple[ToolCall, ...] | None, functions: dict[str, dict]) -> list[str]:
    """Stage 1: why the calls fail the format check (empty when they pass)."""
    if calls is None:
        return ["decode_failed: the answer did not decode into function calls"]
    errors: list[str] = []
    for call in calls:
        if call.name not in functions:
            errors.append(f"unknown_function: {str(call.name)[:80]}")
            continue
        problem = data_problem(call.arguments)
        if problem:
            errors.append(f"bad_arguments: {call.name} ({problem})")
            continue
        for item in check_arguments(functions[call.name], call.arguments):
            code, _, detail = item.partition(": ")
            errors.append(f"{code}: {call.name}.{detail}")
    return errors


def _key(context: BuildContext, plugin: str, base: str) -> str:
    """``base`` for an entry with the default id, else prefixed so two entries stay apart."""
    return base if context.id == plugin else f"{context.id}_{base}"


def _toolset_for(sample: Sample, params: FormatParams) -> str | None:
    return sample.metadata.get("toolset") or params.toolset


class _StagedBase(Metric):
    """Checks the ``toolset`` parameter once, at build time, not once per sample."""

    params: FormatParams

    def __init__(self, params: FormatParams, context: BuildContext) -> None:
        super().__init__(params, context)
        if params.toolset:
            get_toolset(params.toolset)  # an unknown name fails at start


class APIGenFormat(_StagedBase):
    """Stage 1: decodes; known function and argument names; required present; schema types."""

    name = "apigen_format"

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        functions = offered_functions(sample, _toolset_for(sample, self.params))
        errors = format_errors(outcome.calls, functions)
        key = _key(self.context, self.name, "format_pass")
        return Score(values={key: 0.0 if errors else 1.0}, labels={"format_errors": errors})


# --- stage 2: execution -----------------------------------------------------------------------

_CACHE: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 4096


def execute_calls(
    toolset: str, calls: tuple[ToolCall, ...], timeout_s: float, memory_mb: int
) -> list[dict[str, Any]]:
    """Run each call in the sandbox. Tool sets are deterministic, so finished results are
    cached (per process) and the semantic stage does not run the same calls twice."""
    return [_execute_one(toolset, call, timeout_s, memory_mb) for call in calls]


def _execute_one(toolset: str, call: ToolCall, timeout_s: float, memory_mb: int) -> dict:
    if data_problem(call.arguments):  # refused by run_call at once; too big to be a cache key
        return {"name": call.name, **run_call(toolset, call.name, call.arguments).to_dict()}
    key = (toolset, call.name, json.dumps(call.arguments, sort_keys=True, default=repr))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    result = run_call(toolset, call.name, call.arguments, timeout_s, memory_mb)
    record = {"name": call.name, **result.to_dict()}
    if result.kind not in ("timeout", "killed"):  # limits can depend on load: never cached
        with _CACHE_LOCK:
            _CACHE[key] = record
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    return record


def call_failed(record: dict[str, Any]) -> bool:
    """An error, timeout, refusal or bad result, or a result that reports an error itself."""
    if not record["ok"]:
        return True
    value = record.get("result")
    return isinstance(value, dict) and bool(value.get("error"))


class _Staged(_StagedBase):
    """Shared set-up of the stages that run calls: the tool set and the sandbox limits."""

    name = ""
    params: ExecutionParams

    def _earlier_stages(self, sample: Sample, outcome: Outcome) -> dict[str, Any]:
        """Stages 1 and 2 for one sample: format errors, then (if they pass) execution."""
        toolset = _toolset_for(sample, self.params)
        errors = format_errors(outcome.calls, offered_functions(sample, toolset))
        if errors:
            return {"failed": "format", "toolset": toolset, "results": None}
        if toolset is None:
            return {"failed": None, "toolset": None, "results": None}
        calls = outcome.calls or ()
        results = execute_calls(toolset, calls, self.params.timeout_s, self.params.memory_mb)
        failed = "execution" if any(call_failed(r) for r in results) else None
        return {"failed": failed, "toolset": toolset, "results": results}


class APIGenExecution(_Staged):
    """Stage 2: every call runs in the sandbox, in time, and returns a non-error result."""

    name = "apigen_execution"

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        key = _key(self.context, self.name, "execution_pass")
        stages = self._earlier_stages(sample, outcome)
        if stages["failed"] == "format":
            return Score({key: 0.0}, {"execution_results": None, "execution_skipped": "format"})
        if stages["toolset"] is None:  # not applicable: no value, so no 0 in the pass rate
            return Score({}, {"execution_results": None, "execution_skipped": "no tool set"})
        passed = stages["failed"] is None
        return Score({key: 1.0 if passed else 0.0}, {"execution_results": stages["results"]})


# --- stage 3: semantic ------------------------------------------------------------------------


def user_query(sample: Sample) -> str:
    """The user's question: the ``[BEGIN OF QUERY]`` section of xLAM prompts, else the last
    user message."""
    text = next((m.content or "" for m in reversed(sample.messages) if m.role == "user"), "")
    start, end = "[BEGIN OF QUERY]\n", "\n[END OF QUERY]"
    if start in text and end in text:
        return text.split(start, 1)[1].split(end, 1)[0]
    return text


def semantic_prompt(
    functions: list[dict[str, Any]],
    query: str,
    calls: tuple[ToolCall, ...],
    results: list[dict[str, Any]] | None,
) -> str:
    """The pinned judge prompt (:data:`SEMANTIC_PROMPT`, version
    :data:`SEMANTIC_PROMPT_VERSION`) filled in. ``str.format`` never re-reads what it inserts,
    so braces in model output cannot reach the template."""
    shown = (
        "(not executed: no tool set for this sample)"
        if results is None
        else json.dumps(
            [{k: r.get(k) for k in ("name", "kind", "result", "error")} for r in results],
            ensure_ascii=False,
        )
    )
    return SEMANTIC_PROMPT.format(
        functions=json.dumps(functions, ensure_ascii=False),
        query=query,
        calls=json.dumps([c.to_dict() for c in calls], ensure_ascii=False),
        results=shown,
    )


def parse_judgement(text: str | None) -> tuple[bool, str] | None:
    """(passed, thought) from the judge's JSON answer, or None when it cannot be read.
    The first JSON object with a ``pass`` of yes/no (or a boolean) wins; fences are ignored."""
    if not text:
        return None
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            continue
        if not isinstance(value, dict) or "pass" not in value:
            continue
        verdict = value["pass"]
        thought = str(value.get("thought", ""))
        if isinstance(verdict, bool):
            return verdict, thought
        if isinstance(verdict, str) and verdict.strip().lower() in ("yes", "no"):
            return verdict.strip().lower() == "yes", thought
    return None


class APIGenSemantic(_Staged):
    """Stage 3: an LLM judge, through any configured backend, says whether the calls and their
    results serve the query. Raw judgements are stored; an unreadable one gives no value."""

    name = "apigen_semantic"
    params: SemanticParams

    def __init__(self, params: SemanticParams, context: BuildContext) -> None:
        super().__init__(params, context)
        judge_id = params.judge.get("id", f"{context.id}.judge")
        # validated now, built on first use: a local judge model loads only if a sample needs it
        self._judge = context.build("backend", params.judge, id=judge_id, lazy=True)
        self._lock = threading.Lock()
        self._slots: threading.Semaphore | None = None

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        key = _key(self.context, self.name, "semantic_pass")
        stages = self._earlier_stages(sample, outcome)
        labels: dict[str, Any] = {"semantic_prompt_version": SEMANTIC_PROMPT_VERSION}
        if stages["failed"]:
            return Score({key: 0.0}, labels | {"semantic_skipped": stages["failed"]})
        functions = self._function_specs(sample, stages["toolset"])
        prompt = semantic_prompt(
            functions, user_query(sample), outcome.calls or (), stages["results"]
        )
        try:
            text = self._ask(prompt, sample)
        except Exception as exc:  # a failing judge is not the model's fault: no value
            return Score({}, labels | {"judge_error": f"{type(exc).__name__}: {exc}"[:500]})
        labels["semantic_judgement"] = text
        verdict = parse_judgement(text)
        if verdict is None:
            return Score({}, labels | {"judge_error": "unparsable judgement"})
        passed, thought = verdict
        return Score({key: 1.0 if passed else 0.0}, labels | {"semantic_thought": thought})

    @staticmethod
    def _function_specs(sample: Sample, toolset: str | None) -> list[dict[str, Any]]:
        if sample.metadata.get("tools"):
            return list(sample.metadata["tools"])
        if sample.tools:
            return [t.get("function", t) for t in sample.tools]
        return list(get_toolset(toolset).functions) if toolset else []

    def _ask(self, prompt: str, sample: Sample) -> str:
        judge = self._backend()
        request = ChatRequest(
            messages=(Message("user", prompt),),
            params=GenerationParams(
                max_tokens=self.params.max_tokens, temperature=0, seed=self.context.seed
            ),
            task=self.context.id,
            sample_id=sample.id,
        )
        assert self._slots is not None
        with self._slots:
            return judge.chat(request).text or ""

    def _backend(self) -> Any:
        """The judge backend (built once per run, closed by the run)."""
        judge = self._judge()
        with self._lock:
            if self._slots is None:
                slots = max(1, int(getattr(judge, "max_concurrency", 1)))
                self._slots = threading.Semaphore(slots)
        return judge
