"""Metric ``efficiency``: per-sample latency, throughput, token counts, memory and CPU.

It reads what the backend measured while it generated (``ChatResponse.timing`` and token
counts; see ``docs/efficiency.md`` for the exact definitions) and adds the process's peak RSS.
A value the backend did not measure (no ``ttft_s`` from a non-streaming backend, say) is left
out for that sample rather than reported as 0.

Values are named ``ttft_s``, ``total_s``, ... for the entry with the default id and
``<id>.ttft_s`` otherwise, so two entries stay apart.

Hooks only: the metric lives in :mod:`harness_plugins.efficiency._metric`.
"""

from __future__ import annotations

from harness import Register
from harness import hookimpl


@hookimpl
def register_metrics(register: Register) -> None:
    register(
        "efficiency",
        "harness_plugins.efficiency._metric:Efficiency",
        description="Latency, tokens/s, token counts, peak RSS and CPU % per sample "
        "(from the backend's own measurements).",
    )
