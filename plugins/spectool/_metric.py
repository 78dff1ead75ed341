"""Metrics ``spectool`` (corrected definitions) and ``spectool-compat`` (the paper's scoring).

Both read any tool-use sample the harness knows: BFCL samples (``metadata["functions"]``,
BFCL ground truth as ``target``, ``metadata["category"]``), APIGen samples
(``metadata["tools"]``, answers as ``target``) and any task that offers OpenAI ``tools``.
A multi-step outcome puts its trajectory in ``outcome.fields["trajectory"]``: a list of steps
``{"calls": [{"name", "arguments"}] | null, "executed": bool, "observation": ...}``; other
valid ground truths may be listed in ``sample.metadata["ground_truth_alternatives"]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score

from . import SpecToolCompatParams
from . import SpecToolParams
from ._patterns import OTHER_UNCLASSIFIED
from ._patterns import PATTERNS
from ._patterns import Classification
from ._patterns import Evidence
from ._patterns import ExpectedCall
from ._patterns import FunctionSpec
from ._patterns import Step
from ._patterns import calls_from_any
from ._patterns import classify_trajectory
from ._patterns import compat_scores
from ._patterns import expected_from_any
from ._patterns import functions_from_any
from ._patterns import steps_from_any

IRRELEVANCE = ("irrelevance", "live_irrelevance")
RELEVANCE = ("live_relevance",)


@dataclass(frozen=True)
class View:
    """One sample, normalised: offered functions, the answer as steps, the expected calls."""

    functions: dict[str, FunctionSpec]
    steps: list[Step]
    expected: list[ExpectedCall] | None
    alternatives: list[list[ExpectedCall]]
    require_call: bool
    trajectory: bool


def view_of(sample: Sample, outcome: Outcome) -> View:
    """Normalise a sample and its outcome, whatever task produced them."""
    meta = sample.metadata or {}
    raw_functions = meta.get("functions") or meta.get("tools") or list(sample.tools or ())
    functions = functions_from_any(raw_functions)
    category = str(meta.get("category", ""))
    if category in IRRELEVANCE:
        expected: list[ExpectedCall] | None = []
    elif category in RELEVANCE:
        expected = None
    else:
        expected = expected_from_any(sample.target)
    alternatives = [
        e for t in meta.get("ground_truth_alternatives") or () if (e := expected_from_any(t))
    ]
    trajectory = outcome.fields.get("trajectory")
    if trajectory is not None:
        steps = steps_from_any(trajectory)
    else:
        detail = str(outcome.fields.get("decode_error") or "")
        steps = [Step(calls_from_any(outcome.calls), True, detail)]
    if outcome.fields.get("mode") in ("native", "constrained"):
        functions, expected, alternatives = _underscored(functions, expected, alternatives)
    return View(
        functions,
        steps,
        expected,
        alternatives,
        require_call=category in RELEVANCE,
        trajectory=trajectory is not None,
    )


def _underscored(
    functions: dict[str, FunctionSpec],
    expected: list[ExpectedCall] | None,
    alternatives: list[list[ExpectedCall]],
) -> tuple[dict[str, FunctionSpec], list[ExpectedCall] | None, list[list[ExpectedCall]]]:
    """Native tool calling cannot carry dots in names: BFCL offers ``a.b`` as ``a_b``."""

    def fix(calls: list[ExpectedCall]) -> list[ExpectedCall]:
        return [replace(e, name=e.name.replace(".", "_")) for e in calls]

    renamed = {
        k.replace(".", "_"): replace(f, name=k.replace(".", "_")) for k, f in functions.items()
    }
    return (
        renamed,
        None if expected is None else fix(expected),
        [fix(a) for a in alternatives],
    )


def task_verdict(sample: Sample, outcome: Outcome) -> tuple[bool, str] | None:
    """(right?, error type) from the task's own checker, or ``None`` when there is none."""
    if outcome.fields.get("trajectory") is not None:
        return None
    meta = sample.metadata or {}
    if "functions" in meta and "category" in meta:
        from harness_plugins.bfcl import verdict

        return verdict(sample, outcome)
    if "tools" in meta and isinstance(sample.target, list):
        from harness_plugins.apigen import match_calls

        if outcome.calls is None:
            return False, "decoder_failed"
        error = match_calls(list(outcome.calls), sample.target, meta["tools"])
        return not error, error
    return None


def classify_sample(sample: Sample, outcome: Outcome, trust_verdict: bool = True) -> Classification:
    """The corrected classification of one sample, gated by the task's verdict."""
    view = view_of(sample, outcome)
    result = classify_trajectory(
        view.steps,
        view.functions,
        view.expected,
        alternatives=view.alternatives,
        require_call=view.require_call,
    )
    verdict = task_verdict(sample, outcome) if trust_verdict else None
    if verdict is None:
        return result
    right, error_type = verdict
    if right:
        return Classification([], [], dict.fromkeys(PATTERNS, 0), result.denominators)
    if not result.evidence:
        detail = f"the task's checker says wrong ({error_type}); no SpecTool pattern applies"
        result = replace(result, evidence=[Evidence(OTHER_UNCLASSIFIED, detail=detail)])
    return result


class SpecTool(Metric):
    """Per sample: 0/1 per pattern, any pattern, per-call rates; labels ``patterns`` and
    ``pattern_evidence``."""

    params: SpecToolParams

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        result = classify_sample(sample, outcome, self.params.trust_task_verdict)
        values = {f"pattern_{code}": float(code in result.patterns) for code in PATTERNS}
        values["patterns_any"] = float(bool(result.patterns))
        values.update(result.rates())
        limit = self.params.max_evidence
        labels = {
            "patterns": list(result.patterns),
            "pattern_evidence": [e.to_dict() for e in result.evidence[:limit]],
        }
        return Score(
            values=_keyed(self.context.id, "spectool", values),
            labels=_keyed(self.context.id, "spectool", labels),
        )


class SpecToolCompat(Metric):
    """The paper's per-pattern accuracies (higher = fewer errors), for its tables only."""

    params: SpecToolCompatParams

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        view = view_of(sample, outcome)
        steps = view.steps
        if not view.trajectory:  # single turn: calls were not executed, let the validator say
            steps = [replace(s, executed=None) for s in steps]
        truths: Sequence[Sequence[ExpectedCall]] = [
            t for t in [view.expected, *view.alternatives] if t is not None
        ]
        scores = compat_scores(steps, truths, view.functions, max_steps=self.params.max_steps)
        values = {f"compat_{code}": scores[code] for code in PATTERNS}
        errors = {code: int(scores[f"{code}_errors"]) for code in PATTERNS}
        return Score(
            values=_keyed(self.context.id, "spectool-compat", values),
            labels=_keyed(self.context.id, "spectool-compat", {"compat_errors": errors}),
        )


def _keyed(metric_id: str, default_id: str, table: Mapping[str, Any]) -> dict[str, Any]:
    """Keys as they are for the default id; prefixed by the id when a manifest names another,
    so two entries of the same metric stay apart."""
    if metric_id == default_id:
        return dict(table)
    return {f"{metric_id}.{k}": v for k, v in table.items()}
