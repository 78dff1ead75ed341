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

from harness import Backend
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
        self._built: dict[str, list[Sample]] = {}
        self._prompts: dict[str, tuple[Message, ...]] = {}
        self._generation = _generation(params, context.seed)
        data.data_dir()  # fail early, with the install hint, when the wheel is missing

    def samples(self) -> Iterator[Sample]:
        for category in self.categories:
            yield from self._category_samples(category)

    def _category_samples(self, category: str) -> Iterator[Sample]:
        """One category's samples, built once per run and kept for the run's other backends.

        Building a sample (reading BFCL's files, the tool conversion) costs more than decoding
        and checking an answer, every backend asks the same, and BFCL's data is bounded (3,491
        entries, about 40 MB as samples).
        """
        if category in self._built:
            yield from self._built[category]
            return
        built = []
        for index, (entry, truth) in enumerate(data.entries(category)):
            if self.params.limit is not None and index >= self.params.limit:
                break
            built.append(self._sample(category, entry, truth))
            yield built[-1]
        self._built[category] = built  # only once the category was read to its end

    def _sample(self, category: str, entry: dict, truth: list | None) -> Sample:
        """The entry as asked: BFCL's question turns; in prompt mode :meth:`request` puts BFCL's
        system prompt in front, in the other modes the functions go as tools."""
        functions = entry.get("function", [])
        tools = None
        if self.mode != "prompt":
            tools = tuple(openai_tool(f, sanitize_names=True) for f in functions) or None
        return Sample(
            id=entry["id"],
            messages=tuple(
                Message(role=m["role"], content=m["content"]) for m in entry["question"][0]
            ),
            tools=tools,
            target=truth,
            metadata={"category": category, "functions": functions},
        )

    def request(self, sample: Sample) -> ChatRequest:
        return self._request(sample, self._prompted(sample))

    def play(self, sample: Sample, backend: Backend) -> Outcome:
        """As :meth:`Task.play`; a backend that answers by sample id (``sample_lookup``, e.g.
        replay) never reads the prompt, so BFCL's system prompt is not rendered for it."""
        if "sample_lookup" in backend.capabilities:
            return self.decode(sample, backend.chat(self._request(sample, sample.messages)))
        return super().play(sample, backend)

    def _prompted(self, sample: Sample) -> tuple[Message, ...]:
        """The messages with BFCL's system prompt in front (prompt mode), rendered once per
        entry and run: the indented JSON of the function docs costs more than a check."""
        if self.mode != "prompt":
            return sample.messages
        found = self._prompts.get(sample.id)
        if found is None:
            question = [m.to_dict() for m in sample.messages]
            turns = prompt_messages(question, sample.metadata["functions"])
            found = tuple(Message(role=m["role"], content=m["content"]) for m in turns)
            self._prompts[sample.id] = found
        return found

    def _request(self, sample: Sample, messages: tuple[Message, ...]) -> ChatRequest:
        capped = self.params.single_call_cap and sample.metadata["category"] in SINGLE_CALL
        return ChatRequest(
            messages=messages,
            tools=sample.tools,
            tool_choice=None,  # BFCL sends none (the API's default, "auto", applies)
            params=self._generation[capped],
            mode=self.mode,
            task=self.context.id,
            sample_id=sample.id,
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


def _generation(params: BFCLTaskParams, seed: int | None) -> dict[bool, GenerationParams]:
    """The two generation settings a sample can get: uncapped, and capped at one call."""
    return {
        capped: GenerationParams(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            seed=seed,
            extra={"max_calls": 1} if capped else {},
        )
        for capped in (False, True)
    }


class BFCLAst(Metric):
    """Scores a decoded answer as BFCL's evaluator would: 1 or 0, and BFCL's error_type."""

    counted_labels = ("error_type",)  # the report's "Failures by error type"

    params: BFCLAstParams

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        result = self.verdict(sample, outcome, self.params.matching)
        key = "accuracy" if self.params.matching == "greedy" else "accuracy_optimal"
        labels = {"error_type": result.error_type}
        if not result.valid:
            labels["check_errors"] = [str(e) for e in result.errors[:5]]
        return Score(values={key: 1.0 if result.valid else 0.0}, labels=labels)

    @staticmethod
    def verdict(sample: Sample, outcome: Outcome, matching: str = "greedy") -> CheckResult:
        category = sample.metadata["category"]
        decoded_ok = outcome.calls is not None
        calls = [{c.name: _plain(c.arguments)} for c in outcome.calls or ()]
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


def _plain(arguments: Any) -> dict[str, Any]:
    """The arguments as the checker wants them: a dict (read, never changed: no copy)."""
    return arguments if type(arguments) is dict else dict(arguments)
