"""Hooks of the BFCL plugin: task ``bfcl`` and metric ``bfcl_ast`` (imported lazily)."""

from __future__ import annotations

from typing import Any

from harness import hookimpl

from ._task import METRIC_SCHEMA, TASK_SCHEMA


@hookimpl
def register_tasks(register: Any) -> None:
    register("bfcl", "harness_plugins.bfcl._task:BFCLTask", schema=TASK_SCHEMA)


@hookimpl
def register_metrics(register: Any) -> None:
    register("bfcl_ast", "harness_plugins.bfcl._task:BFCLAst", schema=METRIC_SCHEMA)
