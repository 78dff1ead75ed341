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
#: Plotted against each other: every cost (x) against each quality measure that has values (y).
X_AXES = ("size MB", "load s", "TTFT s", "decode tok/s", "peak RSS MB")
NO_PLOTS = "<p>Plots need matplotlib: <code>pip install -e .[plots]</code>.</p>"


def sections(run: RunView) -> list[ReportSection]:
    backends = run.manifest.get("backends") or {}
    if len(backends) < 2 or not _has_probe_or_timings(run):
        return []
    table = ladder_table(run, backends)
    html = (ladder_plots(table) or NO_PLOTS) + table.to_html(number="{:.4g}")
    return [ReportSection("Quality against cost", html, order=20)]


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


def ladder_plots(table: Table) -> str | None:
    """Scatter plots, one per cost, of each quality measure (top-1 agreement, then every
    accuracy column), as inline SVG; None without matplotlib or nothing to plot."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    ys = [c for c in table.columns if c == "top-1" or c.endswith("accuracy")]
    ys = [y for y in ys if len(_points(table, X_AXES[0], y)) >= 2]
    if not ys:
        return None
    fig, axes = plt.subplots(len(ys), len(X_AXES), figsize=(3 * len(X_AXES), 2.6 * len(ys)))
    for row, y in enumerate(ys):
        for col, x in enumerate(X_AXES):
            ax = axes[row][col] if len(ys) > 1 else axes[col]
            _scatter(ax, _points(table, x, y), x, y)
    fig.tight_layout()
    return _svg(fig, plt)


def _points(table: Table, x: str, y: str) -> list[tuple[str, float, float]]:
    """(backend, x, y) of the rows that have both values."""
    xi, yi = table.columns.index(x), table.columns.index(y)
    return [(r[0], r[xi], r[yi]) for r in table.rows if r[xi] is not None and r[yi] is not None]


def _scatter(ax: Any, points: list[tuple[str, float, float]], x: str, y: str) -> None:
    ax.scatter([p[1] for p in points], [p[2] for p in points], s=18)
    for name, px, py in points:
        ax.annotate(name, (px, py), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(x, fontsize=8)
    ax.set_ylabel(y, fontsize=8)
    ax.tick_params(labelsize=7)


def _svg(fig: Any, plt: Any) -> str:
    import io

    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    text = out.getvalue()
    return text[text.index("<svg") :]
