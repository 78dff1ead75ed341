"""Hooks only: the classes live in ``harness_example.parts`` and are imported lazily."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import hookimpl


@hookimpl
def register_backends(register: Any) -> None:
    register(
        "calculator",
        "harness_example.parts:CalculatorBackend",
        schema={
            "description": "A rule-based 'model' that answers 'What is A plus B?' questions.",
            "properties": {
                "wrong_every": {
                    "type": "integer",
                    "minimum": 0,
                    "default": 0,
                    "description": "Answer every Nth question wrongly (0: never).",
                },
                "fail_every": {
                    "type": "integer",
                    "minimum": 0,
                    "default": 0,
                    "description": "Raise on every Nth question (0: never).",
                    "x-operational": True,  # may change on resume (harness >= 0.2)
                },
                "delay_s": {
                    "type": "number",
                    "minimum": 0,
                    "default": 0,
                    "description": "Seconds to wait before answering.",
                },
                "max_concurrency": {"type": "integer", "minimum": 1, "default": 1},
            },
        },
    )


@hookimpl
def register_tasks(register: Any) -> None:
    register(
        "addition",
        "harness_example.parts:AdditionTask",
        schema={
            "description": "Generated addition questions (no data file).",
            "properties": {
                "count": {"type": "integer", "minimum": 1, "default": 20},
                "limit": {"type": "integer", "minimum": 1},
            },
        },
    )


@hookimpl
def register_metrics(register: Any) -> None:
    register(
        "numeric_match",
        "harness_example.parts:NumericMatch",
        schema={"description": "1 when the first number in the output equals the target."},
    )


@hookimpl
def on_run_end(run: Any, results: Any, status: str) -> None:
    marker = Path(run.run_dir) / "example-plugin-hook.json"
    marker.write_text(json.dumps({"status": status, "has_results": results is not None}))
