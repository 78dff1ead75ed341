"""The ``agent`` task (one episode per sample) and the ``agent`` metric.

A sample is an episode id of the environment. Playing it forks the environment, resets it,
hands the :class:`harness.Episode` to the strategy and turns the trajectory into an
``Outcome``: ``output`` is the final answer (or the last observation), ``calls`` every
action taken, and ``fields`` the trajectory (a record per step), ``success``, ``progress``,
``ended_by`` and the episode's split as ``subtask``. An environment or strategy that raises
makes that sample's error; the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from itertools import islice
from typing import Any

from harness import Agent
from harness import BuildContext
from harness import Environment
from harness import Episode
from harness import InputError
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import Task
from harness import ToolCall
from harness import Trajectory

from . import AgentTaskParams


class AgentTask(Task):
    """Episodes of an environment, each played by the strategy within ``max_steps`` turns."""

    default_metrics = ("agent",)
    params: AgentTaskParams

    def __init__(self, params: AgentTaskParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self.environment: Environment = context.build("environment", params.environment)
        self.agent: Agent = context.build("agent", params.agent)
        self._episodes = self._select(list(self.environment.episodes()))

    def _select(self, episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        wanted = self.params.episodes
        if wanted is not None:
            known = {str(e["id"]) for e in episodes}
            unknown = [w for w in wanted if w not in known]
            if unknown:
                raise InputError(
                    f"episodes: the environment has no episode {unknown[0]!r}; "
                    f"it has {', '.join(sorted(known)[:10])}"
                )
            episodes = [e for e in episodes if str(e["id"]) in set(wanted)]
        return list(islice(episodes, self.params.limit))

    def samples(self) -> Iterator[Sample]:
        for episode in self._episodes:
            yield self.sample(episode)

    def size(self) -> int:
        return len(self._episodes)

    def info(self) -> dict[str, Any]:
        return {
            "environment": _name(self.params.environment),
            "agent": _name(self.params.agent),
            "max_steps": self.params.max_steps,
            "environment_info": self.environment.info()
            if hasattr(self.environment, "info")
            else {},
        }

    def play(self, sample: Sample, backend: Any) -> Outcome:
        return self.play_episode(self.agent, sample, backend)

    def play_episode(self, agent: Agent, sample: Sample, backend: Any) -> Outcome:
        """One episode on a fork of the environment, played by ``agent``."""
        environment = self.environment.fork()
        steps, seed = self.params.max_steps, self.context.seed
        episode = Episode.begin(environment, sample.id, steps, self.context.id, seed)
        trajectory = agent.run(episode, backend)
        outcome = _outcome(sample, trajectory, episode.goal)
        cap = int(getattr(agent.params, "max_calls_per_step", 1) or 1)
        return _with_patterns(outcome, environment.tools(), cap)

    def sample(self, episode: dict[str, Any]) -> Sample:
        """The sample of one of the environment's episodes."""
        return Sample(
            id=str(episode["id"]),
            messages=(),
            target=episode.get("target"),
            metadata={"split": episode.get("split"), "goal": episode.get("goal")},
        )


def _name(spec: str | dict[str, Any]) -> str:
    return spec if isinstance(spec, str) else str(spec.get("type"))


def _outcome(sample: Sample, trajectory: Trajectory, goal: str) -> Outcome:
    steps = trajectory.steps
    actions = [ToolCall.from_openai(a) for s in steps for a in s.get("actions") or ()]
    last = steps[-1] if steps else {}
    fields: dict[str, Any] = {
        "trajectory": steps,
        "success": trajectory.ended_by == "success",
        "progress": max((float(s.get("progress") or 0.0) for s in steps), default=0.0),
        "ended_by": trajectory.ended_by,
        "goal": goal,
        **({"agent_notes": trajectory.extra} if trajectory.extra else {}),
    }
    if sample.metadata.get("split"):
        fields["subtask"] = sample.metadata["split"]
    output = trajectory.answer if trajectory.answer is not None else last.get("observation")
    return Outcome(
        output=output,
        calls=tuple(actions),
        responses=tuple(trajectory.responses),
        fields=fields,
    )


def _with_patterns(outcome: Outcome, tools: list[dict[str, Any]], cap: int) -> Outcome:
    """SpecTool's patterns in the trajectory (IFE, IFN, IAN, IAT, RAC), when the spectool
    plugin is installed: their codes and counts join the record."""
    try:
        from harness_plugins.spectool import trajectory_patterns
    except ImportError:
        return outcome
    codes, counts, denominators = trajectory_patterns(outcome.fields["trajectory"], tools, cap)
    found = {k: v for k, v in counts.items() if v and k in PER_STEP}
    fields = {**outcome.fields, "patterns": codes, "pattern_counts": found}
    fields["pattern_denominators"] = {k: denominators.get(k, 0) for k in ("steps", "calls")}
    return replace(outcome, fields=fields)


#: SpecTool's patterns an episode without expected calls can show.
PER_STEP = ("IFE", "IFN", "IAN", "IAT", "RAC")


class AgentMetric(Metric):
    """AgentBoard's measures of one episode, and what a tool-using agent adds:

    ``success`` (0/1), ``progress`` (the rate reached, [0, 1]), ``grounding`` (valid actions
    over actions), ``steps`` (model turns), ``steps_to_success`` (only on success),
    ``format_errors`` (turns that could not be read, over turns), ``recovery`` (only after an
    error: 1 when a later turn made progress or the goal was reached), ``tokens`` and
    ``latency_s`` (the episode's whole)."""

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        steps = outcome.fields.get("trajectory")
        if steps is None:  # the episode did not run (the core records its error)
            return Score(values={})
        values = {
            "success": float(bool(outcome.fields.get("success"))),
            "progress": float(outcome.fields.get("progress") or 0.0),
            "steps": float(len(steps)),
            **_grounding(steps),
            **_recovery(steps, bool(outcome.fields.get("success"))),
            **_cost(outcome),
            **_patterns(outcome),
        }
        if values["success"]:
            values["steps_to_success"] = float(len(steps))
        return Score(values=values)


def _grounding(steps: list[dict[str, Any]]) -> dict[str, float]:
    actions = sum(len(s.get("actions") or ()) for s in steps)
    valid = sum(int(s.get("valid_actions", 0)) for s in steps)
    out = (
        {"format_errors": sum(1 for s in steps if s.get("parse_error")) / len(steps)}
        if steps
        else {}
    )
    if actions:
        out["grounding"] = valid / actions
    return out


def _recovery(steps: list[dict[str, Any]], success: bool) -> dict[str, float]:
    """After the first error (format, invalid action or a fault the environment reported),
    did the episode make progress again or reach the goal?"""
    first = next(
        (i for i, s in enumerate(steps) if s.get("error") or not s.get("valid", True)), None
    )
    if first is None:
        return {}
    before = float(steps[first].get("progress") or 0.0)
    later = [float(s.get("progress") or 0.0) for s in steps[first + 1 :]]
    return {"recovery": float(success or any(p > before for p in later))}


def _patterns(outcome: Outcome) -> dict[str, float]:
    """SpecTool's rates, named as its metric names them: ``IFE_per_step`` (unreadable turns
    over steps) and ``IFN``/``IAN``/``IAT``/``RAC_per_call`` (calls showing it over calls)."""
    if "pattern_counts" not in outcome.fields:
        return {}
    counts, sizes = outcome.fields["pattern_counts"], outcome.fields["pattern_denominators"]
    out = {"IFE_per_step": counts.get("IFE", 0) / sizes["steps"]} if sizes.get("steps") else {}
    if sizes.get("calls"):
        out |= {f"{c}_per_call": counts.get(c, 0) / sizes["calls"] for c in PER_STEP[1:]}
    return out


def _cost(outcome: Outcome) -> dict[str, float]:
    tokens = sum((r.input_tokens or 0) + (r.output_tokens or 0) for r in outcome.responses)
    latency = sum(float(r.timing.get("total_s", 0.0)) for r in outcome.responses)
    return {"tokens": float(tokens), "latency_s": latency}
