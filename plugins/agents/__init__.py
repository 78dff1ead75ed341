"""Agents over many steps: the ``agent`` task (an environment paired with a strategy), its
``agent`` metric, and the strategies ``act``, ``react`` and ``plan_act``.

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
        problems = []
        context = BuildContext("", base_dir)
        for kind, spec in (("environment", self.environment), ("agent", self.agent)):
            try:
                context.build(kind, spec, lazy=True)
            except HarnessError as exc:
                text = str(exc).removeprefix(": ")
                problems.append(text if text.startswith(kind) else f"{kind}: {text}")
        return problems


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
