"""The project's agent environments: ``todo`` (tool operation), ``blocks`` (planning) and
``academia`` (tool query), small, deterministic and offline, with scripted faults (an API
error, an empty result) that measure recovery. Their episodes ship in ``registry/envs/``;
``data`` points one at your own file of the same shape.

Hooks and parameters only: the environments live in :mod:`harness_plugins.envs._worlds`.
"""

from __future__ import annotations

from harness import Params
from harness import Register
from harness import hookimpl
from harness import param


class EnvironmentParams(Params):
    """Episodes from the project's file, or from ``data``."""

    data: str | None = param(
        None,
        format="file",
        description="A JSON file of episodes in the same shape (default: the shipped one).",
    )


class TodoParams(EnvironmentParams):
    """A todo list in memory: list, add, complete, delete and rename tasks (tool operation)."""


class BlocksParams(EnvironmentParams):
    """Blocks world: move one clear block at a time to build the goal's towers (planning)."""


class AcademiaParams(EnvironmentParams):
    """Authors and papers in a small graph: look things up, then finish with the answer."""


@hookimpl
def register_environments(register: Register) -> None:
    register("todo", "harness_plugins.envs._worlds:TodoList", params=TodoParams)
    register("blocks", "harness_plugins.envs._worlds:BlocksWorld", params=BlocksParams)
    register("academia", "harness_plugins.envs._worlds:Academia", params=AcademiaParams)
