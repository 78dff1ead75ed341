"""Task ``bfcl`` and metric ``bfcl_ast``: BFCL's single-turn categories on BFCL's own data.

Each sample is one BFCL entry (``sample_id`` is BFCL's id, ``subtask`` its category). The model
is asked in one of three modes, recorded with every result:

- ``prompt``: BFCL's default system prompt lists the functions; the answer is text, decoded by
  the ``python_calls`` decoder (BFCL's Python call-list format) unless another is named;
- ``native``: the functions go to the backend as OpenAI tools (dots in names become
  underscores, as BFCL does for function-calling models); native tool calls are read back;
- ``constrained``: as native, and the backend forces a well-formed call list (or no call).

The metric scores with our re-implementation of BFCL's AST checker (``checker.py``), which a
parity test holds to BFCL's own verdicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import GenerationParams
from harness import Message
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import Task

from . import BFCLAstParams
from . import BFCLTaskParams
from . import _data as data
from ._checker import CheckResult
from ._checker import check_ast
from ._checker import check_irrelevance
from ._checker import check_relevance
from ._checker import decoder_failed
from ._prompt import openai_tool
from ._prompt import prompt_messages

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

DEFAULT_DECODER = {"prompt": "python_calls", "native": "openai_tool_calls"}
DEFAULT_DECODER["constrained"] = "openai_tool_calls"
GROUPS = {
    "non_live": (["simple_python", "multiple", "parallel", "parallel_multiple"], "unweighted"),
    "live": (["live_simple", "live_multiple", "live_parallel", "live_parallel_multiple"], "count"),
    "irrelevance": (["irrelevance", "live_irrelevance"], "unweighted"),
}

METRICS = ["accuracy", "accuracy_optimal"]  # what BFCL's groups average
SINGLE_CALL = frozenset(
    {"simple_python", "multiple", "live_simple", "live_multiple"} | set(data.RELEVANCE_CATEGORIES)
)


class BFCLTask(Task):
    """BFCL categories as one task; each category is a subtask with BFCL's groups on top."""

    default_metrics = ("bfcl_ast",)
    params: BFCLTaskParams

    def __init__(self, params: BFCLTaskParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self.categories: list[str] = list(params.categories)
        self.mode: str = params.mode
        self.decoder = context.build("decoder", params.decoder or DEFAULT_DECODER[self.mode])
        data.data_dir()  # fail early, with the install hint, when the wheel is missing

    def samples(self) -> Iterator[Sample]:
        limit = self.params.limit
        for category in self.categories:
            for index, (entry, truth) in enumerate(data.entries(category)):
                if limit is not None and index >= limit:
                    break
                yield self._sample(category, entry, truth)

    def _sample(self, category: str, entry: dict, truth: list | None) -> Sample:
        question = entry["question"][0]
        functions = entry.get("function", [])
        if self.mode == "prompt":
            messages = prompt_messages(question, functions)
            tools = None
        else:
            messages = question
            tools = tuple(openai_tool(f, sanitize_names=True) for f in functions)
        return Sample(
            id=entry["id"],
            messages=tuple(Message(role=m["role"], content=m["content"]) for m in messages),
            tools=tools or None,
            target=truth,
            metadata={"category": category, "functions": functions},
        )

    def request(self, sample: Sample) -> ChatRequest:
        params = self.params
        extra = {}
        if params.single_call_cap and sample.metadata["category"] in SINGLE_CALL:
            extra["max_calls"] = 1
        return ChatRequest(
            messages=sample.messages,
            tools=sample.tools,
            tool_choice="auto" if sample.tools else None,
            params=_generation(params.max_tokens, params.temperature, self.context.seed, extra),
            mode=self.mode,
        )

    def decode(self, sample: Sample, response: ChatResponse) -> Outcome:
        fields = {"mode": self.mode, "subtask": sample.metadata["category"]}
        return self.decoder.outcome(response, fields)

    def data_files(self) -> list[Path]:
        files = [data.question_file(c) for c in self.categories]
        return files + [p for c in self.categories if (p := data.answer_file(c))]

    def size(self) -> int:
        limit = self.params.limit
        sizes = [data.count(c) for c in self.categories]
        return sum(s if limit is None else min(s, limit) for s in sizes)

    def info(self) -> dict[str, Any]:
        return {
            "source": f"bfcl-eval {data.bfcl_version()} (BFCL v4 data files)",
            "bfcl_version": data.bfcl_version(),
            "categories": self.categories,
            "mode": self.mode,
            "variant": self.mode,
            "decoder": type(self.decoder).__name__,
            "groups": self.groups(),
        }

    def groups(self) -> list[dict[str, Any]]:
        """BFCL's aggregation groups over the categories run, and an overall labelled by them."""
        specs = []
        for name, (members, weighting) in GROUPS.items():
            ran = [m for m in members if m in self.categories]
            if ran:
                specs.append(
                    {"name": name, "members": ran, "weighting": weighting, "metrics": METRICS}
                )
        if len(specs) > 1:
            names = [s["name"] for s in specs]
            specs.append(
                {
                    "name": "overall:" + "+".join(names),
                    "members": names,
                    "weighting": "unweighted",
                    "require_all": True,
                    "metrics": METRICS,
                }
            )
        return specs


def _generation(
    max_tokens: int, temperature: float, seed: int | None, extra: dict[str, Any]
) -> GenerationParams:
    return GenerationParams(max_tokens=max_tokens, temperature=temperature, seed=seed, extra=extra)


class BFCLAst(Metric):
    """Scores a decoded answer as BFCL's evaluator would: 1 or 0, and BFCL's error_type."""

    params: BFCLAstParams

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        result = self.verdict(sample, outcome, self.params.matching)
        key = "accuracy" if self.params.matching == "greedy" else "accuracy_optimal"
        labels = {"error_type": result.error_type}
        if not result.valid:
            labels["check_errors"] = [str(e) for e in result.errors][:5]
        return Score(values={key: 1.0 if result.valid else 0.0}, labels=labels)

    @staticmethod
    def verdict(sample: Sample, outcome: Outcome, matching: str = "greedy") -> CheckResult:
        category = sample.metadata["category"]
        decoded_ok = outcome.calls is not None
        calls = [{c.name: dict(c.arguments)} for c in outcome.calls or ()]
        if category in ("irrelevance", "live_irrelevance"):
            return check_irrelevance(decoded_ok, calls)
        if category == "live_relevance":
            return check_relevance(decoded_ok, calls, outcome.fields.get("decode_error", ""))
        if not decoded_ok:
            return decoder_failed(outcome.fields.get("decode_error", ""))
        native = outcome.fields.get("mode") in ("native", "constrained")
        return check_ast(
            sample.metadata["functions"],
            calls,
            sample.target,
            category,
            matching=matching,
            underscore_to_dot=native,
        )
