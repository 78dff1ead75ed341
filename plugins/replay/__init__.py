"""Backend ``replay``: answers from a JSONL file of recorded model outputs.

One line per sample, either the raw text or OpenAI-shaped tool calls::

    {"task": "qa", "sample_id": "q1", "output": "Paris"}
    {"task": "bfcl", "sample_id": "simple_python_0",
     "tool_calls": [{"name": "area", "arguments": "{\\"base\\": 10}"}]}

The file is indexed once (key -> byte offset) and lines are read on demand, so replaying a
million outputs costs an index, not a copy of the file in memory. A later line for the same
key replaces an earlier one. A sample with no line becomes that sample's error.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from harness import Backend, BuildContext, ChatRequest, ChatResponse, ToolCall, hookimpl
from harness.errors import InputError

SCHEMA = {
    "description": "Replays recorded outputs from a JSONL file (one line per task and sample).",
    "properties": {
        "path": {
            "type": "string",
            "format": "file",
            "description": 'JSONL file: {"task", "sample_id", "output"} or "tool_calls" per line.',
        },
    },
    "required": ["path"],
}


class ReplayError(Exception):
    """The replay file has no usable answer for a sample."""


class ReplayBackend(Backend):
    """Looks each request up by (task id, sample id) in a recorded JSONL file."""

    capabilities = frozenset({"native_tools"})
    max_concurrency = 1  # a dictionary look-up: threads would only add overhead

    def __init__(self, params: dict[str, Any], context: BuildContext) -> None:
        super().__init__(params, context)
        self.path = Path(params["path"])
        self._fd = os.open(self.path, os.O_RDONLY)
        self._index = _index_file(self.path)

    def chat(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        line = self._lookup(request.task, request.sample_id)
        response = _to_response(line)
        return ChatResponse(
            text=response.text,
            tool_calls=response.tool_calls,
            extra=response.extra,
            timing={"total_s": time.perf_counter() - started},
        )

    def _lookup(self, task: str | None, sample_id: str | None) -> dict[str, Any]:
        where = self._index.get((task, str(sample_id))) or self._index.get((None, str(sample_id)))
        if where is None:
            raise ReplayError(f"{self.path} has no line for task {task!r}, sample {sample_id!r}")
        offset, length = where
        return json.loads(os.pread(self._fd, length, offset))

    def info(self) -> dict[str, Any]:
        return {"path": str(self.path), "lines_indexed": len(self._index)}

    def close(self) -> None:
        os.close(self._fd)


def _index_file(path: Path) -> dict[tuple[str | None, str], tuple[int, int]]:
    """(task, sample_id) -> (offset, length) of its line; bad lines are named with their number."""
    index: dict[tuple[str | None, str], tuple[int, int]] = {}
    offset = 0
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                key = _line_key(line, path, number)
                index[key] = (offset, len(line))
            offset += len(line)
    return index


def _line_key(line: bytes, path: Path, number: int) -> tuple[str | None, str]:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {number}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or "sample_id" not in data:
        raise InputError(
            f"{path}: line {number}: expected an object with 'sample_id' "
            "(and 'task', and 'output' or 'tool_calls')"
        )
    if "output" not in data and "tool_calls" not in data:
        raise InputError(f"{path}: line {number}: needs 'output' or 'tool_calls'")
    task = data.get("task")
    return (None if task is None else str(task), str(data["sample_id"]))


def _to_response(line: dict[str, Any]) -> ChatResponse:
    if "tool_calls" not in line or line["tool_calls"] is None:
        return ChatResponse(text=line.get("output"))
    try:
        calls = tuple(_tool_call(c) for c in line["tool_calls"])
    except (ValueError, TypeError, KeyError) as exc:
        # A malformed recorded call is the model's fault: the task decodes and scores it.
        return ChatResponse(text=line.get("output"), extra={"tool_call_error": str(exc)})
    return ChatResponse(text=line.get("output"), tool_calls=calls)


def _tool_call(item: dict[str, Any]) -> ToolCall:
    """``{"name", "arguments"}`` or OpenAI's ``{"function": {"name", "arguments"}}``."""
    body = item.get("function", item)
    arguments = body.get("arguments", {})
    if isinstance(arguments, str):
        arguments = json.loads(arguments) if arguments.strip() else {}
    if not isinstance(arguments, dict):
        raise ValueError(f"arguments of {body.get('name')!r} are not a JSON object")
    return ToolCall(name=str(body["name"]), arguments=arguments)


@hookimpl
def register_backends(register: Any) -> None:
    register("replay", "harness_plugins.replay:ReplayBackend", schema=SCHEMA)
