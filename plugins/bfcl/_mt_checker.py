"""BFCL's multi-turn checker, re-implemented with the same verdicts and error types.

BFCL (bfcl-eval 2026.3.23, ``eval_checker/multi_turn_eval/multi_turn_checker.py`` and the
multi-turn part of ``eval_runner.py``) judges an entry from the model's decoded calls, per turn
a list of steps, per step a list of calls:

* a model result with another number of turns than the ground truth was force-terminated
  (``multi_turn:force_terminated``); steps that decoded to no call are dropped;
* turn by turn, the model's calls run on the model's instances and the ground truth's calls on
  a second set built from the same ``initial_config``;
* a turn with ground truth but no model call fails (``multi_turn:empty_turn_model_response``);
  a turn whose ground truth is empty is not checked (its calls still run);
* otherwise every public attribute of every instance must be equal to the ground truth's
  (``multi_turn:instance_state_mismatch``), and the turn's ground-truth execution results
  must be contained, as a multiset, in every result the model got so far, all turns
  together (``multi_turn:execution_response_mismatch``).

The parity test (``tests/test_bfcl_multi_turn.py``) holds this module to BFCL's own checker.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import get_args

from harness import ToolCall

from . import MultiTurnCategory
from . import _data as data
from ._mt_classes import World
from ._mt_classes import parse_ground_truth

#: The categories as a tuple; declared once, as the environment's ``Literal`` parameter type.
CATEGORIES: tuple[str, ...] = get_args(MultiTurnCategory)
MAX_STEPS_PER_TURN = 20  # BFCL's MAXIMUM_STEP_LIMIT: the 21st step force-quits

Turns = Sequence[Sequence[Sequence[ToolCall]]]


@dataclass(frozen=True)
class MultiTurnResult:
    """BFCL's verdict on one entry: valid, its error type ("" when valid), a message, and the
    turn that failed (None when valid or when no turn is to blame)."""

    valid: bool
    error_type: str = ""
    message: str = ""
    turn: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def check_multi_turn(
    entry: Mapping[str, Any], ground_truth: Sequence[Sequence[str]], turns: Turns
) -> MultiTurnResult:
    """BFCL's verdict on the model's ``turns`` (per turn, steps of calls) for ``entry``."""
    if len(turns) != len(ground_truth):
        return MultiTurnResult(
            False,
            "multi_turn:force_terminated",
            f"the model result has {len(turns)} turns; the ground truth has {len(ground_truth)}",
        )
    classes = list(entry["involved_classes"])
    model, truth = World(entry), World(entry, "ground_truth")
    model_results: list[str] = []  # every turn's, as BFCL's response check reads them
    for index, (steps, expected) in enumerate(zip(turns, ground_truth, strict=True)):
        called = [call for step in steps for call in step]
        model_results.extend(model.run(call)[0] for call in called)
        expected_results = [truth.run(parse_ground_truth(t, classes))[0] for t in expected]
        if not expected:
            continue
        if not called:
            return MultiTurnResult(
                False,
                "multi_turn:empty_turn_model_response",
                f"no function call in turn {index}, which has ground truth",
                index,
            )
        failure = turn_failure(model, truth, model_results, expected_results, index)
        if failure is not None:
            return failure
    return MultiTurnResult(True)


def turn_failure(
    model: World, truth: World, model_results: list[str], expected: list[str], index: int
) -> MultiTurnResult | None:
    """The state check, then the response check, of one turn with ground truth."""
    differences = state_differences(model, truth)
    if differences:
        return MultiTurnResult(
            False,
            "multi_turn:instance_state_mismatch",
            f"turn {index}: the state of {', '.join(differences)} differs from the ground truth",
            index,
            {"differences": sorted(a for d in differences.values() for a in d)},
        )
    missing = missing_results(expected, model_results)
    if missing:
        return MultiTurnResult(
            False,
            "multi_turn:execution_response_mismatch",
            f"turn {index}: the model's results so far lack {len(missing)} of the ground truth's",
            index,
            {"missing": missing[:5]},
        )
    return None


def state_differences(model: World, truth: World) -> dict[str, list[str]]:
    """Per class, the public attributes whose values differ (BFCL's ``_compare_instances``:
    the ground truth's attributes, compared with ``!=``; one the model's instance lacks
    differs)."""
    differences: dict[str, list[str]] = {}
    missing = object()
    for name, expected in truth.instances.items():
        got = model.instances[name]
        changed = [
            attr
            for attr, value in vars(expected).items()
            if not attr.startswith("_") and getattr(got, attr, missing) != value
        ]
        if changed:
            differences[name] = changed
    return differences


def missing_results(expected: list[str], got: list[str]) -> list[str]:
    """The expected results not found in ``got``, each occurrence used once (BFCL's
    ``_is_subsequence_unordered``)."""
    left = Counter(got)
    missing = []
    for item in expected:
        if left[item] > 0:
            left[item] -= 1
        else:
            missing.append(item)
    return missing


# --- the entries ------------------------------------------------------------------------------


def category_of(entry_id: str) -> str:
    """``multi_turn_base_12`` -> ``multi_turn_base``."""
    return entry_id.rsplit("_", 1)[0]


@functools.cache  # BFCL's files do not change while a process runs
def category_entries(category: str) -> dict[str, tuple[dict[str, Any], list[list[str]]]]:
    """A category's entries by id, each with its ground truth (per turn, call strings)."""
    return {str(entry["id"]): (entry, truth) for entry, truth in data.entries(category)}


def find_entry(entry_id: str) -> tuple[dict[str, Any], list[list[str]]] | None:
    """The entry and ground truth of a multi-turn id, or None for any other id."""
    category = category_of(entry_id)
    if category not in CATEGORIES:
        return None
    return category_entries(category).get(entry_id)
