"""Environment ``bfcl_multi_turn`` and metric ``bfcl_multi_turn``: BFCL's multi-turn categories
played on the agent protocol and judged by BFCL's multi-turn checker (``_mt_checker``).

An episode is one BFCL entry. Its user turns come one at a time: the first is the observation
of :meth:`BFCLMultiTurn.reset`; each call the agent makes runs on BFCL's own API classes and its
result is the observation; an answer in words closes the turn (:meth:`~BFCLMultiTurn.respond`)
and brings the next user message, as BFCL's inference loop does when a step has no call. At
a ``miss_func`` entry's held-out turn the withheld functions join :meth:`~BFCLMultiTurn.tools`
and the user message is BFCL's stock one (in prompt mode, after the functions' docs).

Each call is one step of the turn (the protocol hands calls over one by one): the 21st call
of a turn force-quits, as BFCL's 21st step does. When the last turn closes (or a force quit
ends the episode) the calls recorded per turn go through the checker: ``success`` is BFCL's
verdict. Progress is the share of turns with ground truth whose own check (a call, the state,
the results) has passed at some step, kept at its best.

The metric re-checks an ``agent`` task's record from its trajectory alone (the environment
copy that played it is gone): ``accuracy`` 1 or 0, and BFCL's ``error_type`` as a label.
"""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Sequence
from typing import Any

from harness import BuildContext
from harness import Environment
from harness import InputError
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import StepResult
from harness import ToolCall

from . import BFCLMultiTurnParams
from . import _data as data
from ._mt_checker import MAX_STEPS_PER_TURN
from ._mt_checker import MultiTurnResult
from ._mt_checker import category_entries
from ._mt_checker import category_of
from ._mt_checker import check_multi_turn
from ._mt_checker import find_entry
from ._mt_checker import turn_failure
from ._mt_classes import World
from ._mt_classes import func_docs
from ._mt_classes import parse_ground_truth
from ._prompt import MULTITURN
from ._prompt import openai_tool

JSON = dict[str, Any]
#: BFCL's user message at a held-out turn (DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC).
ADDED_FUNCTIONS = "I have updated some more functions you can choose from. What about now?"
GOAL = "Do what the user asks, turn by turn, with function calls. " + MULTITURN
#: How a turn is finished: any answer without a call (in prompt mode text that is not a call
#: list is a format error for the agent strategies, so the empty list is asked for).
FINISH_TURN = {
    "prompt": " To finish a turn, answer with an empty call list: []",
    "native": " To finish a turn, answer in words without a call.",
}
FORCED_QUIT = f"Model has been forced to quit after {MAX_STEPS_PER_TURN} steps."
#: The note the agent strategies add when a turn holds more calls than they run.
CAPPED = re.compile(r"ERROR \| (\d+) calls in one turn; only the first (\d+) ran\Z")


class BFCLMultiTurn(Environment):
    """BFCL's multi-turn entries as conversations with a stateful world."""

    params: BFCLMultiTurnParams

    def __init__(self, params: BFCLMultiTurnParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self.categories: list[str] = list(params.categories)
        self.by_id: dict[str, tuple[str, JSON, list[list[str]]]] = {}
        for category in self.categories:
            chosen = list(category_entries(category).items())[: params.limit]
            self.by_id.update((i, (category, e, t)) for i, (e, t) in chosen)
        self.entry: JSON | None = None

    # --- the protocol -------------------------------------------------------------------

    def episodes(self) -> list[JSON]:
        return [{"id": i, "split": category} for i, (category, _, _) in self.by_id.items()]

    def tools(self) -> list[JSON]:
        """The involved classes' functions, less those held out until a later turn."""
        if self.entry is None:
            return []
        hidden = self._hidden()
        return [
            copy.deepcopy(tool)
            for name in self.entry["involved_classes"]
            for tool in _class_tools(name)
            if tool["function"]["name"] not in hidden
        ]

    def reset(self, task_id: str, seed: int | None) -> tuple[str, str]:
        if task_id not in self.by_id:
            raise InputError(f"bfcl_multi_turn: no episode {task_id!r}")
        _, self.entry, self.truth = self.by_id[task_id]
        self.classes: list[str] = list(self.entry["involved_classes"])
        self.question: list[list[JSON]] = self.entry["question"]
        self.held_out = {int(k): v for k, v in (self.entry.get("missed_function") or {}).items()}
        self.model, self.expected = World(self.entry), World(self.entry, "ground_truth")
        self.turn = 0
        self.turns: list[list[list[ToolCall]]] = [[]]
        self.results: list[str] = []
        self.passed: set[int] = set()
        self.best = 0.0
        self.verdict: MultiTurnResult | None = None
        self._start_turn()
        finish = FINISH_TURN["prompt" if self.params.mode == "prompt" else "native"]
        return self._user_message(), GOAL + finish

    def step(self, action: ToolCall) -> StepResult:
        if self.verdict is not None:
            return self._over("ERROR | the conversation is over")
        text, ran = self.model.run(action)
        self.turns[-1].append([action])
        self.results.append(text)
        self._progress()
        info = {"turn": self.turn, "step": len(self.turns[-1])}
        if len(self.turns[-1]) > MAX_STEPS_PER_TURN:
            verdict = self._finish()
            observation = f"{text}\n\n{FORCED_QUIT}"
            return StepResult(
                observation, self.best, True, ran, verdict.valid, _error(ran), self._info(info)
            )
        return StepResult(text, self.best, valid=ran, error=_error(ran), info=info)

    def respond(self, text: str) -> StepResult:
        """An answer in words closes the turn: the next user message, or the verdict."""
        if self.verdict is not None:
            return self._over("The conversation is over.")
        if self.turn + 1 >= len(self.truth):
            verdict = self._finish()
            outcome = "valid" if verdict.valid else verdict.error_type
            return StepResult(
                f"The conversation is over (BFCL: {outcome}).",
                self.best,
                done=True,
                success=verdict.valid,
                info=self._info({"turn": self.turn}),
            )
        self.turn += 1
        self.turns.append([])
        self._start_turn()
        return StepResult(self._user_message(), self.best, info={"turn": self.turn})

    def info(self) -> JSON:
        return {
            "source": f"bfcl-eval {data.bfcl_version()} (BFCL v4 multi-turn data files)",
            "categories": self.categories,
            "episodes": len(self.by_id),
            "mode": self.params.mode,
        }

    def data_files(self) -> list[Any]:
        files = [data.question_file(c) for c in self.categories]
        return files + [p for c in self.categories if (p := data.answer_file(c))]

    # --- the turns ----------------------------------------------------------------------

    def _start_turn(self) -> None:
        """Run the turn's ground truth on the expected world (checked against after each call)."""
        self.expected_results = [
            self.expected.run(parse_ground_truth(t, self.classes))[0] for t in self.truth[self.turn]
        ]

    def _user_message(self) -> str:
        names = self.held_out.get(self.turn)
        if names is None:
            return "\n\n".join(m["content"] for m in self.question[self.turn])
        if self.params.mode != "prompt":
            return ADDED_FUNCTIONS
        docs = [d for name in names for d in self._docs() if d["name"] == name]
        return f"{docs}\n{ADDED_FUNCTIONS}"  # BFCL's prompting text: the docs' Python repr

    def _docs(self) -> list[JSON]:
        return [doc for name in self.classes for doc in func_docs(name)]

    def _hidden(self) -> set[str]:
        return {n for turn, names in self.held_out.items() if turn > self.turn for n in names}

    def _progress(self) -> None:
        """Mark the turn once its own BFCL check passes; progress is the share marked."""
        if self.turn in self.passed or not self.truth[self.turn]:
            return
        failed = turn_failure(
            self.model, self.expected, self.results, self.expected_results, self.turn
        )
        if failed is None:
            self.passed.add(self.turn)
            checked = sum(1 for t in self.truth if t)
            self.best = max(self.best, len(self.passed) / checked)

    def _finish(self) -> MultiTurnResult:
        assert self.entry is not None
        self.verdict = check_multi_turn(self.entry, self.truth, self.turns)
        if self.verdict.valid:
            self.best = 1.0
        return self.verdict

    def _info(self, extra: JSON) -> JSON:
        verdict = self.verdict
        return {
            **extra,
            "error_type": verdict.error_type if verdict else None,
            "turns": [[c.to_dict() for step in turn for c in step] for turn in self.turns],
        }

    def _over(self, text: str) -> StepResult:
        success = bool(self.verdict and self.verdict.valid)
        return StepResult(text, self.best, done=True, valid=False, success=success, error="over")


def _error(ran: bool) -> str | None:
    return None if ran else "invalid_action"


@functools.cache
def _class_tools(name: str) -> tuple[JSON, ...]:
    """A class's function docs as OpenAI tools (BFCL's type names made JSON Schema)."""
    return tuple(openai_tool(doc, sanitize_names=False) for doc in func_docs(name))


# --- the metric ---------------------------------------------------------------------------------


class BFCLMultiTurnMetric(Metric):
    """BFCL's multi-turn verdict on an ``agent`` episode of ``bfcl_multi_turn``: accuracy 1 or
    0, with BFCL's error_type (empty when valid). Other samples are not scored."""

    counted_labels = ("error_type",)

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        steps = outcome.fields.get("trajectory")
        found = find_entry(sample.id)
        split = sample.metadata.get("split")
        if steps is None or found is None or split not in (None, category_of(sample.id)):
            return Score(values={})
        entry, truth = found
        result = check_multi_turn(entry, truth, turns_from_trajectory(steps))
        labels: JSON = {"error_type": result.error_type}
        if not result.valid:
            labels["check_error"] = result.message
        return Score(values={"accuracy": 1.0 if result.valid else 0.0}, labels=labels)


def turns_from_trajectory(steps: Sequence[JSON]) -> list[list[list[ToolCall]]]:
    """The calls the environment ran, per turn, read back from an agent trajectory.

    A record with calls adds those the strategy ran (beyond its cap it runs none);
    one answered in words closes the turn; an unreadable one changes nothing. The 21st call of
    a turn force-quits there; a turn still open when the trajectory stops (the agent's budget)
    never closed, so it is not BFCL's either."""
    turns: list[list[list[ToolCall]]] = [[]]
    for record in steps:
        actions = record.get("actions")
        if actions is None:
            continue
        if not actions:
            if record.get("done"):
                return turns
            turns.append([])
            continue
        for action in _executed(record, actions):
            turns[-1].append([ToolCall.from_openai(action)])
            if len(turns[-1]) > MAX_STEPS_PER_TURN:
                return turns
    return turns[:-1]


def _executed(record: JSON, actions: list[JSON]) -> list[JSON]:
    """The record's calls that reached the environment: one per result when the strategy
    records results, else all but those its cap note refused."""
    results = record.get("results")
    if isinstance(results, list):
        return actions[: len(results)]
    found = CAPPED.search(str(record.get("observation") or ""))
    if found and int(found[1]) == len(actions):
        return actions[: int(found[2])]
    return actions
