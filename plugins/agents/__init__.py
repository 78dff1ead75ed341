"""Agents over many steps: the ``agent`` task (an environment paired with a strategy), its
``agent`` metric, the strategies ``act``, ``react``, ``plan_act`` and ``pract``, and the
``rpo`` task (PRAct's principles learned by Reflective Principle Optimization).

The protocol (``harness.Environment``, ``harness.Agent``) is in the core; environments come
from any plugin (``register_environments``: the project's own are in
:mod:`harness_plugins.envs`). A strategy turns backend responses into actions through
harness's decoders, so every tool-call mode (prompt, native, constrained) drives agents too.

Hooks and parameters only: the parts live in :mod:`harness_plugins.agents._task` and
:mod:`harness_plugins.agents._strategies`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from typing import Literal

from harness import BuildContext
from harness import HarnessError
from harness import Params
from harness import Register
from harness import ReportSection
from harness import RunView
from harness import hookimpl
from harness import param

Mode = Literal["prompt", "native", "constrained"]


@hookimpl
def register_tasks(register: Register) -> None:
    register("agent", "harness_plugins.agents._task:AgentTask", params=AgentTaskParams)
    register("rpo", "harness_plugins.agents._rpo:RpoTask", params=RpoTaskParams)


@hookimpl
def register_metrics(register: Register) -> None:
    register("agent", "harness_plugins.agents._task:AgentMetric", params=AgentMetricParams)


@hookimpl
def report_sections(run: RunView) -> list[ReportSection]:
    from . import _report

    return _report.sections(run)


@hookimpl
def register_agents(register: Register) -> None:
    register("act", "harness_plugins.agents._strategies:Act", params=ActParams)
    register("react", "harness_plugins.agents._strategies:ReAct", params=ReActParams)
    register("plan_act", "harness_plugins.agents._strategies:PlanAct", params=PlanActParams)
    register("pract", "harness_plugins.agents._strategies:PRAct", params=PRActParams)


class AgentTaskParams(Params):
    """Episodes of an environment played by an agent strategy, one episode per sample."""

    environment: str | dict[str, Any] = param(
        description="The environment: a name (todo, blocks, academia...) or an entry "
        "{type: ..., params...}.",
    )
    agent: str | dict[str, Any] = param(
        "act",
        description="The strategy: act, react, plan_act, pract, or an entry "
        "{type: act, mode: ...}.",
    )
    max_steps: int = param(
        20, minimum=1, maximum=200, description="Hard budget of model turns per episode."
    )
    episodes: list[str] | None = param(
        None, description="Play only these episode ids (default: every episode)."
    )
    limit: int | None = param(None, minimum=1, description="Play the first N episodes.")

    def preflight(self, base_dir: Path) -> list[str]:
        """The environment and the strategy are known and their parameters valid (checked
        as manifest entries are, before anything is built)."""
        return [
            *_build_problems("environment", "environment", self.environment, base_dir),
            *_build_problems("agent", "agent", self.agent, base_dir),
        ]


class AgentMetricParams(Params):
    """Success, progress rate, grounding accuracy, steps, format errors and recovery."""


class ActParams(Params):
    """Act: each model turn's tool calls are the actions (AgentBoard's act-only agent)."""

    mode: Mode = param(
        "native",
        description="How calls are asked for: prompt (listed in the system prompt, read "
        "from text), native (the backend's tools), constrained (grammar-forced).",
    )
    decoder: str | None = param(
        None,
        description="Decoder of the actions (default: python_calls in prompt mode, "
        "openai_tool_calls otherwise).",
    )
    max_tokens: int = param(256, minimum=1, description="Generation budget per model turn.")
    max_calls_per_step: int = param(
        1,
        minimum=1,
        description="Most actions one turn may take (AgentBoard's agents take one); more are "
        "refused with an error observation.",
    )
    on_format_error: Literal["tell", "stop", "answer"] = param(
        "tell",
        description="A turn that cannot be read as calls: tell the agent and go on, end the "
        "episode (SpecTool without feedback), or take it as an answer in words (BFCL: it "
        "ends the user's turn).",
    )
    system: str | None = param(
        None,
        description="The system prompt (default: the strategy's; prompt mode lists the tools).",
    )


class ReActParams(ActParams):
    """ReAct: a thought in words, then the action, each turn (in constrained mode the thought
    is a free generation before the grammar-forced action)."""

    thought_tokens: int = param(96, minimum=1, description="Budget of each thought.")


class PlanActParams(ActParams):
    """Plan-act: a numbered plan first, then act with the plan in view."""

    plan_tokens: int = param(160, minimum=1, description="Budget of the plan.")


class PRActParams(ReActParams):
    """PRAct: ReAct with a principle per action in the action documentation the model sees
    (hand-written here, or learned by RPO)."""

    principles: dict[str, str] = param(
        {},
        description="Principle text per action name ('*': for every action), e.g. "
        "{move: 'Only move a clear block.'}; over those of principles_file.",
    )
    principles_file: str | None = param(
        None,
        format="file",
        description="A JSON file of principles ({action: text}, or {principles: {...}} as "
        "RPO saves them).",
    )


class RpoTaskParams(Params):
    """PRAct with Reflective Principle Optimization: principles learned on the training
    episodes (execution, reflection, optimization), then the held-out episodes played with
    them. Every version is saved in the run directory (docs/rpo.md)."""

    environment: str | dict[str, Any] = param(
        description="The environment: a name (todo, blocks, academia...) or an entry "
        "{type: ..., params...}.",
    )
    train: list[str] = param(description="Episode ids the principles are learned on.")
    validation: list[str] = param(
        [],
        description="Episode ids every version is scored on (for select: best); disjoint "
        "from train and test.",
    )
    test: list[str] | None = param(
        None,
        description="The held-out episode ids, the task's samples (default: every episode "
        "in neither train nor validation).",
    )
    agent: str | dict[str, Any] = param(
        "pract",
        description="The executor: pract, or an entry {type: pract, mode: ..., principles: "
        "...}; its principles (or principles_file) are the initial ones.",
    )
    method: Literal["batch", "traj"] = param(
        "batch",
        description="RPO-Batch (one optimizer call per batch of trajectories, over all "
        "their reflections) or RPO-Traj (an update after every trajectory).",
    )
    feedback: Literal["reward", "self"] = param(
        "reward",
        description="Reward-RPO (the reflector is told the environment's reward) or "
        "Self-RPO (it judges success itself and never sees a reward).",
    )
    batch_size: int = param(4, minimum=1, description="Trajectories per update (batch only).")
    epochs: int = param(1, minimum=1, maximum=100, description="Passes over the train episodes.")
    shuffle: bool = param(
        True, description="Shuffle the train episodes each epoch (seeded by run.seed)."
    )
    select: Literal["final", "best"] = param(
        "final",
        description="Play the held-out episodes with the last version, or with the best on "
        "the validation episodes (Self-RPO ranks by its own verdicts).",
    )
    reward: Literal["progress", "success"] = param(
        "progress", description="The environment's reward: progress rate or success (0/1)."
    )
    reflector: str | dict[str, Any] | None = param(
        None,
        description="The reflector's backend entry {type: ..., params...} (default: the "
        "executor, the run's backend).",
    )
    optimizer: str | dict[str, Any] | None = param(
        None, description="The optimizer's backend entry (default: the executor)."
    )
    optimizer_mode: Mode = param(
        "prompt",
        description="How the optimizer answers: prompt (a JSON object in text), native or "
        "constrained (a set_principles call, grammar-forced in constrained mode).",
    )
    reflector_prompt: str | None = param(
        None,
        format="file",
        description="The reflector's prompt template (default: the project's "
        "registry/prompts/rpo/reflector-<feedback>.v1.txt).",
    )
    optimizer_prompt: str | None = param(
        None,
        format="file",
        description="The optimizer's prompt template (default: registry/prompts/rpo/"
        "optimizer.v1.txt).",
    )
    reflection_tokens: int = param(256, minimum=1, description="Budget of each reflection.")
    optimizer_tokens: int = param(512, minimum=1, description="Budget of each optimizer answer.")
    max_principle_chars: int = param(
        300, minimum=20, description="Longest principle kept from the optimizer's answer."
    )
    max_steps: int = param(
        20, minimum=1, maximum=200, description="Hard budget of model turns per episode."
    )
    limit: int | None = param(None, minimum=1, description="Play the first N held-out episodes.")

    def preflight(self, base_dir: Path) -> list[str]:
        """Training and evaluation episodes disjoint; the executor can take principles; the
        helper backends, the environment and the prompt files valid."""
        from . import _rpo

        problems = _overlaps(self.train, self.validation, self.test)
        if not self.train:
            problems.append("train: no episode to learn from; list at least one episode id")
        if self.select == "best" and not self.validation:
            problems.append("select: best needs validation episodes; list some, or use final")
        specs = {"environment": self.environment, "agent": self.agent}
        specs |= {"reflector": self.reflector, "optimizer": self.optimizer}
        for field, spec in specs.items():
            kind = field if field in ("environment", "agent") else "backend"
            problems += _build_problems(field, kind, spec, base_dir)
        problems += _learnable(self.agent)
        reflector, optimizer = _rpo.prompt_files(self)
        fields = _rpo.reflector_fields(self.feedback)
        problems += _rpo.template_problems("reflector_prompt", reflector, fields)
        problems += _rpo.template_problems("optimizer_prompt", optimizer, _rpo.OPTIMIZER_FIELDS)
        return problems


def _build_problems(field: str, kind: str, spec: Any, base_dir: Path) -> list[str]:
    """Why a nested entry would not build, each line starting with the field's name."""
    if spec is None:
        return []
    try:
        BuildContext("", base_dir).build(kind, spec, lazy=True)
    except HarnessError as exc:
        text = str(exc).removeprefix(": ")
        return [field + text[len(kind) :] if text.startswith(kind) else f"{field}: {text}"]
    return []


def _overlaps(train: list[str], validation: list[str], test: list[str] | None) -> list[str]:
    """Training and evaluation must not share an episode: each shared id is refused."""
    splits = {"train": train, "validation": validation, "test": test or []}
    problems = [
        f"{name}: lists episode {repeated} twice; list each episode once"
        for name, ids in splits.items()
        for repeated in sorted({i for i in ids if ids.count(i) > 1})
    ]
    names = list(splits)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            shared = sorted(set(splits[first]) & set(splits[second]))
            if shared:
                problems.append(
                    f"{second}: shares episode(s) {', '.join(shared)} with {first}; training "
                    "and evaluation episodes must be disjoint (remove them from one list)"
                )
    return problems


def _learnable(agent: str | dict[str, Any]) -> list[str]:
    """The executor must have principles to learn (a ``principles`` parameter)."""
    from harness import PluginHost

    name = agent if isinstance(agent, str) else str(agent.get("type"))
    try:
        component = PluginHost.current().component("agent", name)
    except HarnessError:
        return []  # reported by the build check
    fields = getattr(component.params_class, "__dataclass_fields__", {})
    if "principles" in fields:
        return []
    return [
        f"agent: {name!r} has no principles to learn; use pract (or a strategy with a "
        "principles parameter)"
    ]
