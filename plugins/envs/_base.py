"""What the project's environments share: episodes from a JSON file the project ships, tools
declared once, arguments checked against them, scripted faults, monotone progress.

An environment subclass declares ``TOOLS`` (name -> description and JSON-Schema
parameters), builds its state in :meth:`start`, answers each tool in ``tool_<name>`` (an
observation; raise :class:`Refused` for an action the world cannot apply) and says which of
the episode's subgoals hold in :meth:`met`. Progress is the fraction met, kept at its best
(AgentBoard's rate); success is every subgoal met.

Faults are part of an episode's data (``"faults": [{"tool": "list_tasks", "nth": 1, "kind":
"api_error", "message": "503 Service Unavailable"}]``): the nth call of that tool fails that
way (``api_error``: an error observation, ``empty``: an empty result) and changes nothing, so
recovery can be measured.
"""

from __future__ import annotations

import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

from harness_plugins.shared.sandbox import check_arguments

from harness import BuildContext
from harness import Environment
from harness import InputError
from harness import StepResult
from harness import ToolCall

JSON = dict[str, Any]


class Refused(Exception):
    """An action the world cannot apply (its message is the observation)."""


class ToolEnvironment(Environment):
    """Episodes from ``data``; subclasses give ``TOOLS``, :meth:`start`, ``tool_*`` and
    :meth:`met`."""

    TOOLS: dict[str, JSON] = {}
    DATA = ""  # a file in registry/envs/

    def __init__(self, params: Any, context: BuildContext) -> None:
        super().__init__(params, context)
        path = getattr(params, "data", None) or str(
            resources.files("harness_registry") / "envs" / self.DATA
        )
        self.path = Path(path)
        self.data = _read(self.path)
        self.by_id = {str(e["id"]): e for e in self.data["episodes"]}

    # --- the protocol -------------------------------------------------------------------

    def episodes(self) -> list[JSON]:
        return [
            {k: v for k, v in e.items() if k in ("id", "split", "goal")}
            for e in self.data["episodes"]
        ]

    def tools(self) -> list[JSON]:
        return [
            {"type": "function", "function": {"name": name, **spec}}
            for name, spec in self.TOOLS.items()
        ]

    def reset(self, task_id: str, seed: int | None) -> tuple[str, str]:
        self.episode = self.by_id[task_id]
        self.calls: Counter[str] = Counter()
        self.best = 0.0
        observation = self.start(self.episode)
        return observation, str(self.episode["goal"])

    def step(self, action: ToolCall) -> StepResult:
        spec = self.TOOLS.get(action.name)
        if spec is None:
            known = ", ".join(self.TOOLS)
            return self._invalid(f"unknown function {action.name!r}; the functions are {known}")
        problems = check_arguments(spec.get("parameters"), action.arguments)
        if problems:
            return self._invalid(f"{action.name}: {'; '.join(problems)}")
        self.calls[action.name] += 1
        fault = self._fault(action.name)
        if fault is not None:
            return self._result(fault, valid=True, error="fault")
        try:
            observation = getattr(self, f"tool_{action.name}")(**action.arguments)
        except Refused as exc:
            return self._invalid(f"{action.name}: {exc}")
        return self._result(observation)

    def data_files(self) -> list[Path]:
        return [self.path]

    def info(self) -> JSON:
        return {"data": str(self.path), "episodes": len(self.data["episodes"])}

    # --- for subclasses -----------------------------------------------------------------

    def start(self, episode: JSON) -> str:
        raise NotImplementedError

    def met(self) -> tuple[int, int]:
        """(subgoals met now, subgoals in all)."""
        raise NotImplementedError

    # --- helpers ------------------------------------------------------------------------

    def _fault(self, tool: str) -> str | None:
        for fault in self.episode.get("faults") or ():
            if fault["tool"] == tool and int(fault.get("nth", 1)) == self.calls[tool]:
                if fault.get("kind") == "empty":
                    return str(fault.get("message", "[]"))
                return f"ERROR | {fault.get('message', 'the service failed; try again')}"
        return None

    def _invalid(self, message: str) -> StepResult:
        return self._result(f"ERROR | {message}", valid=False, error="invalid_action")

    def _result(self, observation: str, valid: bool = True, error: str | None = None) -> StepResult:
        met, total = self.met()
        self.best = max(self.best, met / total if total else 0.0)
        success = self.succeeded(met, total)
        return StepResult(
            observation,
            self.best,
            done=success or self.finished(),
            valid=valid,
            success=success,
            error=error,
        )

    def succeeded(self, met: int, total: int) -> bool:
        """Every subgoal met (an environment judged by its answer says otherwise)."""
        return total > 0 and met == total

    def finished(self) -> bool:
        """Over without success (an answer given, say)."""
        return False


def _read(path: Path) -> JSON:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the environment's episodes ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("episodes"), list):
        raise InputError(f"{path}: expected an object with a list of 'episodes'")
    for number, episode in enumerate(data["episodes"]):
        if not isinstance(episode, dict) or "id" not in episode or "goal" not in episode:
            raise InputError(f"{path}: episodes[{number}] needs an 'id' and a 'goal'")
    return data
