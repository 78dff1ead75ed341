"""Task ``spectool``: probe queries played as multi-step episodes over executable tool sets.

An episode follows SpecTool's protocol: the model sees the functions plus a ``finish(answer)``
action, calls functions step by step (at most ``max_steps``), and each call is checked by a
validator before it runs. With ``feedback`` on (the default) a call with an unknown function,
unknown or missing arguments or a wrong type is not executed and the validator's message is
the observation; with it off the call goes to the sandbox as it is (which refuses it without
running anything). Valid calls run in the sandbox (:mod:`harness_plugins.shared.sandbox`): a
subprocess with a timeout, resource limits and no network. The episode's trajectory goes to
``outcome.fields["trajectory"]`` for the ``spectool`` metric; metric ``spectool_success``
says whether every expected call ran and the model finished.

The loop is the agent protocol's: each probe is a :class:`ProbeEnvironment` played by the
``act`` strategy (harness_plugins.agents), whose per-turn trajectory becomes SpecTool's
per-call steps (:func:`legacy_steps`); without feedback a format error ends the episode.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from harness_plugins.shared.sandbox import check_arguments
from harness_plugins.shared.sandbox import run_call
from harness_plugins.shared.toolsets import TOOLSETS

from harness import BuildContext
from harness import Environment
from harness import Episode
from harness import Message
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import StepResult
from harness import Task
from harness import ToolCall

from ._probes import Probe
from ._probes import apigen_seeds
from ._probes import augment
from ._probes import bfcl_seeds

if TYPE_CHECKING:
    from collections.abc import Iterator

    from . import SpecToolTaskParams

FINISH = {
    "name": "finish",
    "description": "Call this with your final answer once the request is fully handled.",
    "parameters": {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    },
}
SYSTEM = (
    "You can call functions to help the user. Call one or more functions at a time; you will "
    "see their results. When the request is fully handled, call finish(answer=...) with your "
    "final answer."
)


class SpecToolTask(Task):
    default_metrics = ("spectool_success", "spectool")
    params: SpecToolTaskParams

    def __init__(self, params: SpecToolTaskParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self.mode = params.mode
        default = "python_calls" if self.mode == "prompt" else "openai_tool_calls"
        self.decoder = context.build("decoder", params.decoder or default)
        self.agent = context.build(
            "agent",
            {
                "type": "act",
                "mode": self.mode,
                "decoder": params.decoder or default,
                "max_tokens": params.max_tokens,
                "max_calls_per_step": params.max_calls_per_step,
                "on_format_error": "tell" if params.feedback else "stop",
                "system": SYSTEM,
            },
        )

    def probes(self) -> list[Probe]:
        p = self.params
        seeds: list[Probe] = []
        if "bfcl" in p.sources:
            seeds += bfcl_seeds()
        if "apigen" in p.sources:
            seeds += apigen_seeds(Path(p.apigen_path) if p.apigen_path else None)
        seeds = [s for s in seeds if not p.toolsets or s.toolset in p.toolsets]
        probes = list(augment(seeds, tuple(p.augmentations), self.context.seed or 0))
        return probes[: p.limit] if p.limit else probes

    def samples(self) -> Iterator[Sample]:
        for probe in self.probes():
            specs = [
                f
                for f in TOOLSETS[probe.toolset].functions
                if probe.offered is None or f["name"] in probe.offered
            ]
            tools = tuple({"type": "function", "function": dict(f)} for f in [*specs, FINISH])
            yield Sample(
                id=probe.id,
                messages=(Message("system", SYSTEM), Message("user", probe.query)),
                tools=tools,
                target=[dict(c) for c in probe.expected],
                metadata={
                    "toolset": probe.toolset,
                    "category": probe.augmentation,
                    "source": probe.source,
                },
            )

    def size(self) -> int:
        return len(self.probes())

    def data_files(self) -> list[Path]:
        path = self.params.apigen_path
        return [Path(path)] if path else []

    def play(self, sample: Sample, backend: Any) -> Outcome:
        """The probe as an episode of the ``act`` strategy (the agent protocol's loop)."""
        environment = ProbeEnvironment(self, sample)
        p, seed = self.params, self.context.seed
        episode = Episode.begin(
            environment, sample.id, p.max_steps, self.context.id, seed, p.deadline_s
        )
        trajectory = self.agent.run(episode, backend)
        steps = legacy_steps(trajectory.steps, self.params.max_calls_per_step)
        answer = environment.answer if environment.answer is not None else trajectory.answer
        executed = [
            ToolCall(c["name"], c["arguments"])
            for s in steps
            if s["executed"]
            for c in s["calls"] or ()
        ]
        fields = {
            "trajectory": steps,
            "mode": self.mode,
            "finished": answer is not None,
            "feedback": self.params.feedback,
            "subtask": sample.metadata["category"],
            "deadline": trajectory.ended_by == "deadline",
        }
        last = trajectory.responses[-1].text if trajectory.responses else None
        return Outcome(
            output=answer if answer is not None else last,
            calls=tuple(executed),
            responses=tuple(trajectory.responses),
            fields=fields,
        )


class ProbeEnvironment(Environment):
    """One probe as an environment (the agent protocol): its tool set plus ``finish``, each
    call checked by SpecTool's validator and run in the sandbox. With feedback off a call
    goes to the sandbox as it is (which refuses it without running anything)."""

    def __init__(self, task: SpecToolTask, sample: Sample) -> None:
        super().__init__({}, task.context)
        self.params: SpecToolTaskParams = task.params
        self.sample = sample
        self.specs = {t["function"]["name"]: t["function"] for t in sample.tools or ()}
        self.answer: str | None = None

    def episodes(self) -> list[dict[str, Any]]:
        return [{"id": self.sample.id}]

    def tools(self) -> list[dict[str, Any]]:
        return list(self.sample.tools or ())

    def reset(self, task_id: str, seed: int | None) -> tuple[str, str]:
        self.answer = None
        return "", str(self.sample.messages[-1].content or "")

    def step(self, action: ToolCall) -> StepResult:
        if action.name == "finish":
            self.answer = str(action.arguments.get("answer", ""))
            return StepResult("answer recorded", 0.0, done=True, info={"finish": True})
        problem = self._validate(action)
        if problem and self.params.feedback:
            record = f"ERROR | {problem}"
            info = {"executed": False, "record": record}
            return StepResult(f"{action.name}: {record}", 0.0, valid=False, info=info)
        result = run_call(
            self.sample.metadata["toolset"],
            action.name,
            action.arguments,
            timeout_s=self.params.call_timeout_s,
        )
        executed = result.kind not in ("unknown_function", "bad_arguments")
        record = result.result if result.ok else f"ERROR | {result.kind}: {result.error}"
        shown = f"{action.name}: {json.dumps(record, default=str)[:2000]}"
        info = {"executed": executed, "record": record}
        return StepResult(
            shown, 0.0, valid=executed, error=None if result.ok else result.kind, info=info
        )

    def _validate(self, call: ToolCall) -> str | None:
        """SpecTool's validator: unknown function, then argument names, then types."""
        spec = self.specs.get(call.name)
        if spec is None:
            return (
                f"unknown function {call.name!r}; valid functions: {', '.join(sorted(self.specs))}"
            )
        problems = check_arguments(spec.get("parameters"), call.arguments)
        return "; ".join(problems) if problems else None


def legacy_steps(turns: list[dict[str, Any]], cap: int) -> list[dict[str, Any]]:
    """The agent's per-turn trajectory as SpecTool's per-call steps (``calls``, ``executed``,
    ``observation``), what the ``spectool`` metric and report read."""
    steps: list[dict[str, Any]] = []
    for turn in turns:
        actions = turn.get("actions")
        if actions is None:
            note = f"format error: {turn.get('parse_error')}"
            steps.append({"calls": None, "executed": False, "observation": note})
            continue
        if not actions:
            steps.append({"calls": [], "executed": False, "observation": "final answer"})
            continue
        if len(actions) > cap:
            note = f"ERROR | {len(actions)} calls in one turn; only the first {cap} ran"
            steps.append({"calls": actions[cap:], "executed": False, "observation": note})
        for action, result in zip(actions[:cap], turn.get("results") or (), strict=False):
            if not result.get("finish"):
                executed = result.get("executed", result.get("valid"))  # an agent's: valid
                steps.append(
                    {
                        "calls": [action],
                        "executed": bool(executed),
                        "observation": result.get("record", result.get("observation")),
                    }
                )
    return steps


class SpecToolSuccess(Metric):
    """1 when every expected call ran (same function, same arguments) and the model finished."""

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        done = Counter(_key(c.name, c.arguments) for c in outcome.calls or ())
        need = Counter(_key(c["name"], c["arguments"]) for c in sample.target or [])
        covered = all(done[k] >= n for k, n in need.items())
        finished = bool(outcome.fields.get("finished"))
        steps = len(outcome.responses)
        return Score(
            values={
                "success": float(covered and finished),
                "calls_covered": float(covered),
                "finished": float(finished),
                "steps": float(steps),
            }
        )


def _key(name: str, arguments: dict[str, Any]) -> str:
    norm = {k: v.strip().lower() if isinstance(v, str) else v for k, v in arguments.items()}
    return json.dumps([name, norm], sort_keys=True, default=str)
