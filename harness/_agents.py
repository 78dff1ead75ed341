"""The agent protocol: environments an agent acts in over many steps, and agent strategies.

An :class:`Environment` is a world with episodes (``episodes()``), tools in OpenAI's schema
(``tools()``), ``reset(task_id, seed) -> (observation, goal)`` and ``step(action) ->``
:class:`StepResult`. Progress is AgentBoard's: a number in [0, 1] that never goes down within
an episode; ``success`` says the goal is reached. A bad action (unknown tool, wrong
arguments, a scripted API fault) is an observation for the agent, never an exception.

An :class:`Agent` is a strategy (act, react, plan-act...): it drives a backend through one
:class:`Episode` within its step budget and returns the :class:`Trajectory`. The ``agent``
task pairs the two, one episode per sample; each episode works on its own
:meth:`Environment.fork`, so episodes may run concurrently.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from harness._parts import Backend
from harness._parts import Part
from harness._records import ChatResponse
from harness._records import ToolCall

JSON = dict[str, Any]


@dataclass(frozen=True)
class StepResult:
    """What one action did: the observation the agent sees next, the episode's progress so
    far (monotone, in [0, 1]), whether the episode is over, whether the action was valid
    (a known tool with acceptable arguments that the world could apply), whether the goal is
    reached, and the error an invalid action met (also told in ``observation``)."""

    observation: str
    progress: float
    done: bool = False
    valid: bool = True
    success: bool = False
    error: str | None = None
    info: JSON = field(default_factory=dict)


class Environment(Part):
    """A world an agent acts in. Subclass it and implement :meth:`episodes`, :meth:`tools`,
    :meth:`reset` and :meth:`step`.

    A run builds one environment per task entry; every episode plays on :meth:`fork`'s copy,
    so :meth:`reset` must build the episode's state as new objects (never mutate state the
    copies share)."""

    def episodes(self) -> Iterable[JSON]:
        """The episodes on offer: ``{"id": ..., "split": "easy"|"hard"?, ...}`` each (the
        split becomes the record's ``subtask``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement episodes()")

    def tools(self) -> list[JSON]:
        """The actions, as OpenAI tools (``{"type": "function", "function": {...}}``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement tools()")

    def fork(self) -> Environment:
        """A copy for one episode (default: a shallow copy; :meth:`reset` builds the state)."""
        return copy.copy(self)

    def reset(self, task_id: str, seed: int | None) -> tuple[str, str]:
        """Start episode ``task_id``; return the first observation and the goal."""
        raise NotImplementedError(f"{type(self).__name__} does not implement reset()")

    def step(self, action: ToolCall) -> StepResult:
        """Apply one action (a tool call) and say what happened."""
        raise NotImplementedError(f"{type(self).__name__} does not implement step()")

    def respond(self, text: str) -> StepResult | None:
        """The agent answered in words, without a call. None (the default): that answer ends
        the episode. A conversational environment (BFCL's multi-turn) returns the next user
        turn as the observation instead (``done`` after the last one); :meth:`tools` may
        change from then on (functions BFCL adds at a later turn)."""
        return None


@dataclass
class Episode:
    """One episode as an agent receives it: the forked environment after ``reset``, the goal
    and first observation, the step budget, the ids a backend request carries, and a
    wall-clock limit (seconds; once passed, the episode ends after the current turn)."""

    environment: Environment
    goal: str
    observation: str
    max_steps: int
    task: str
    sample_id: str
    seed: int | None = None
    deadline_s: float | None = None

    @classmethod
    def begin(
        cls,
        environment: Environment,
        sample_id: str,
        max_steps: int,
        task: str,
        seed: int | None = None,
        deadline_s: float | None = None,
    ) -> Episode:
        """Reset ``environment`` for episode ``sample_id`` and wrap it for an agent."""
        observation, goal = environment.reset(sample_id, seed)
        return cls(environment, goal, observation, max_steps, task, sample_id, seed, deadline_s)


@dataclass
class Trajectory:
    """What an agent did in an episode: one plain-data record per step (``prompt``, ``raw``
    output, parsed ``action`` or ``parse_error``, ``observation``, ``progress``, ``valid``,
    ``error``, ``done``, and the strategy's own fields such as ``thought``), every backend
    response, the final answer if the agent gave one, why the episode ended (``success``,
    ``done``, ``answer``, ``budget``, ``deadline`` or ``format_error``), and the strategy's
    episode-level notes (a plan)."""

    steps: list[JSON] = field(default_factory=list)
    responses: list[ChatResponse] = field(default_factory=list)
    answer: str | None = None
    ended_by: str = "budget"
    extra: JSON = field(default_factory=dict)


class Agent(Part):
    """A strategy that drives a backend through an :class:`Episode`. Implement :meth:`run`."""

    def run(self, episode: Episode, backend: Backend) -> Trajectory:
        raise NotImplementedError(f"{type(self).__name__} does not implement run()")
