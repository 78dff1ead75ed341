"""Backend ``replay``: answers from a JSONL file of recorded model outputs.

One line per sample, either the raw text or OpenAI-shaped tool calls::

    {"task": "qa", "sample_id": "q1", "output": "Paris"}
    {"task": "bfcl", "sample_id": "simple_python_0",
     "tool_calls": [{"name": "area", "arguments": "{\\"base\\": 10}"}]}

The file is indexed once (key -> byte offset) and lines are read on demand, so replaying a
million outputs costs an index, not a copy of the file in memory. A later line for the same
key replaces an earlier one. A sample with no line becomes that sample's error.

Hooks and parameters only: the backend lives in :mod:`harness_plugins.replay._backend`.
"""

from __future__ import annotations

from harness import Params
from harness import Register
from harness import hookimpl
from harness import param


@hookimpl
def register_backends(register: Register) -> None:
    register("replay", "harness_plugins.replay._backend:ReplayBackend", params=ReplayParams)


class ReplayParams(Params):
    """Replays recorded outputs from a JSONL file (one line per task and sample)."""

    path: str = param(
        format="file",
        description='JSONL file, one line per sample: {"task": the task entry\'s id, '
        '"sample_id", "output"}, or "tool_calls" instead of "output".',
    )
