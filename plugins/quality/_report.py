"""The report's "Quality against cost" section: one row per backend of a run, what it cost
(size on disk, load time, time to first token, decode rate, peak memory) next to what it
scored (the logit probe's KL and top-1 agreement, perplexity, every task's accuracy)."""

from __future__ import annotations

import math
from typing import Any

from harness import ReportSection
from harness import RunView
from harness import Table

#: (column, metric, statistic of the aggregate row): costs are medians, quality means.
COSTS = (("TTFT s", "ttft_s", "median"), ("decode tok/s", "decode_tok_s", "median"))
COSTS += (("peak RSS MB", "peak_rss_mb", "median"),)
QUALITY = (("KL", "kl", "value"), ("top-1", "top1", "value"), ("ppl", "ppl", "median"))


def sections(run: RunView) -> list[ReportSection]:
    backends = run.manifest.get("backends") or {}
    if len(backends) < 2 or not _has_probe_or_timings(run):
        return []
    table = ladder_table(run, backends)
    return [ReportSection("Quality against cost", table.to_html(number="{:.4g}"), order=20)]


def _has_probe_or_timings(run: RunView) -> bool:
    return any(r["metric"] in ("kl", "ttft_s") for r in run.rows)


def ladder_table(run: RunView, backends: dict[str, Any]) -> Table:
    """Rows by size on disk (largest first); a missing measure is an empty cell."""
    accuracy = sorted({r["task"] for r in run.rows if r["metric"] == "accuracy"})
    columns = ["backend", "format", "size MB", "load s"]
    columns += [c for c, _, _ in COSTS] + [c for c, _, _ in QUALITY]
    columns += [f"{task} accuracy" for task in accuracy]
    rows = [_row(run, bid, info, accuracy) for bid, info in backends.items()]
    rows.sort(key=lambda r: -(r[2] if isinstance(r[2], float) else 0.0))
    return Table(columns, rows)


def _row(run: RunView, backend: str, info: dict[str, Any], accuracy: list[str]) -> list[Any]:
    info = {k.removeprefix("wrapped_"): v for k, v in info.items()}
    size = info.get("model_size_bytes")
    row = [backend, _format(info), size / 2**20 if size else None, info.get("load_s")]
    row += [_stat(run, backend, metric, stat) for _, metric, stat in COSTS + QUALITY]
    row += [_stat(run, backend, "accuracy", "value", task) for task in accuracy]
    return row


def _format(info: dict[str, Any]) -> str:
    card = info.get("model_card") or {}
    kind = card.get("format") or info.get("model_format") or info.get("runtime", "")
    quant = card.get("quantization") or (info.get("gguf") or {}).get("file_type", "")
    return f"{kind} {quant}".strip()


def _stat(run: RunView, backend: str, metric: str, stat: str, task: str | None = None) -> Any:
    for r in run.rows:
        mine = r["backend"] == backend and r["metric"] == metric and r["level"] == "task"
        if mine and (task is None or r["task"] == task):
            value = r[stat]
            return None if value is None or math.isnan(value) else value
    return None
