"""The ``replay`` backend: looks each request up in an indexed JSONL file of recorded outputs."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any

from harness import Backend
from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import InputError
from harness import ToolCall
from harness import parse_json

from . import ReplayParams


class ReplayError(Exception):
    """The replay file has no usable answer for a sample."""


class ReplayBackend(Backend):
    """Looks each request up by (task id, sample id) in a recorded JSONL file."""

    capabilities = frozenset({"native_tools", "sample_lookup"})
    max_concurrency = 1  # a dictionary look-up: threads would only add overhead

    params: ReplayParams

    def __init__(self, params: ReplayParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self.path = Path(params.path)
        self._fd = os.open(self.path, os.O_RDONLY)
        self._index = _index_file(self.path)

    def chat(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        line = self._lookup(request.task, request.sample_id)
        return _to_response(line, started)

    def _lookup(self, task: str | None, sample_id: str | None) -> dict[str, Any]:
        where = self._index.get((task, str(sample_id))) or self._index.get((None, str(sample_id)))
        if where is None:
            raise ReplayError(f"{self.path} has no line for task {task!r}, sample {sample_id!r}")
        offset, length = where
        return parse_json(os.pread(self._fd, length, offset), self.path)  # type: ignore[no-any-return]

    def info(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.path.read_bytes()).hexdigest()  # a resume checks it
        return {"path": str(self.path), "lines_indexed": len(self._index), "sha256": digest}

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
    data = parse_json(line, path, number)
    if not isinstance(data, dict) or "sample_id" not in data:
        raise InputError(
            f"{path}: line {number}: expected an object with 'sample_id' "
            "(and 'task', and 'output' or 'tool_calls')"
        )
    if "output" not in data and "tool_calls" not in data:
        raise InputError(f"{path}: line {number}: needs 'output' or 'tool_calls'")
    if not isinstance(data.get("output"), str | None):
        raise InputError(
            f"{path}: line {number}: 'output' must be a string or null, found "
            f"{type(data['output']).__name__} (write the model's text as a JSON string)"
        )
    task = data.get("task")
    return (None if task is None else str(task), str(data["sample_id"]))


def _to_response(line: dict[str, Any], started: float) -> ChatResponse:
    calls, extra = None, {}
    if line.get("tool_calls") is not None:
        try:
            calls = tuple(ToolCall.from_openai(c) for c in line["tool_calls"])
        except (ValueError, TypeError, KeyError) as exc:
            # A malformed recorded call is the model's fault: the task decodes and scores it.
            extra = {"tool_call_error": str(exc)}
    timing = {"total_s": time.perf_counter() - started}
    return ChatResponse(text=line.get("output"), tool_calls=calls, extra=extra, timing=timing)
