"""Hooks of the SpecTool plugin: metrics ``spectool`` and ``spectool-compat`` (lazy imports)."""

from __future__ import annotations

from typing import Any

from harness import hookimpl

from ._metric import COMPAT_SCHEMA, SPECTOOL_SCHEMA


@hookimpl
def register_tasks(register: Any) -> None:
    from ._task import TASK_SCHEMA

    register("spectool", "harness_plugins.spectool._task:SpecToolTask", schema=TASK_SCHEMA)


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "spectool_success",
        "harness_plugins.spectool._task:SpecToolSuccess",
        schema={"description": "A probe episode ran every expected call and finished."},
    )
    register("spectool", "harness_plugins.spectool._metric:SpecTool", schema=SPECTOOL_SCHEMA)
    register(
        "spectool-compat",
        "harness_plugins.spectool._metric:SpecToolCompat",
        schema=COMPAT_SCHEMA,
    )
