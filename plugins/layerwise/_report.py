"""The report's "Layer by layer" section: per-layer curves of each divergence family, a line
per backend, and a table of the output statistics and most divergent layers.

Everything comes from the aggregate rows the task wrote (``layer NN`` subtasks), so the
section costs no pass over ``samples.jsonl``.
"""

from __future__ import annotations

import html
import math
from typing import Any

from harness import ReportSection
from harness import RunView
from harness import Table
from harness import figure_html

#: (row metric, panel title): "layer alone" panels name the damaged layer, "own path" ones
#: show how the damage accumulates.
PANELS = (
    ("rel_l2", "hidden state rel. L2 (layer alone)"),
    ("path_rel_l2", "hidden state rel. L2 (own path)"),
    ("attention_js", "attention Jensen-Shannon"),
    ("jacobian_div", "1 - Jacobian cosine"),
    ("curvature_div", "curvature rel. difference"),
    ("lr_multiplier", "learning-rate multiplier"),
)
OUTPUT = (("KL mean", "kl_mean"), ("KL p99", "kl_p99"), ("top-1", "top1"), ("ΔPPL", "ppl_delta"))
FAMILIES = ("hidden", "attention", "jacobian", "curvature")


def sections(run: RunView) -> list[ReportSection]:
    tasks = run.entry_ids("task", "layerwise")
    parts = [_task_part(run, task) for task in sorted(tasks)]
    parts = [p for p in parts if p]
    if not parts:
        return []
    intro = (
        "<p>Where each backend departs from the reference, layer by layer (layer 0 is the "
        "embedding). <em>Layer alone</em>: each layer is fed the reference's input, so a "
        "peak marks the layer that causes the difference. <em>Own path</em>: each model "
        "runs on its own states, so differences accumulate. See docs/layerwise.md.</p>"
    )
    return [ReportSection("Layer by layer", intro + "".join(parts), order=25)]


def curves(run: RunView, task: str) -> dict[str, dict[str, dict[int, float]]]:
    """``{metric: {backend: {layer: mean}}}`` from the task's ``layer NN`` rows."""
    found: dict[str, dict[str, dict[int, float]]] = {}
    for row in run.rows:
        if row["task"] != task or row["level"] != "subtask":
            continue
        if not str(row["subtask"]).startswith("layer "):
            continue
        layer = int(str(row["subtask"]).split()[1])
        found.setdefault(row["metric"], {}).setdefault(row["backend"], {})[layer] = row["value"]
    return found


def _task_part(run: RunView, task: str) -> str:
    data = curves(run, task)
    if not data:
        return ""
    title = f"<h3>{html.escape(task)}</h3>"
    return title + _figure(task, data) + _table(run, task).to_html(number="{:.4g}")


def _figure(task: str, data: dict[str, dict[str, dict[int, float]]]) -> str:
    panels = [(key, title) for key, title in PANELS if key in data]
    try:
        import matplotlib
    except ImportError:
        return ""
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not panels:
        return ""
    columns = 2
    rows = math.ceil(len(panels) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(10, 2.6 * rows), squeeze=False)
    for ax, (key, title) in zip(axes.flat, panels, strict=False):
        for index, (backend, points) in enumerate(sorted(data[key].items())):
            layers = sorted(points)
            ax.plot(
                layers, [points[k] for k in layers], marker=".", label=backend, color=f"C{index}"
            )
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("layer", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    alt = f"Per-layer divergence curves of {task}, one line per backend"
    return figure_html(fig, alt, "Per-layer divergence from the reference", id=f"fig-layers-{task}")


def _table(run: RunView, task: str) -> Table:
    columns = ["backend", *(c for c, _ in OUTPUT), *(f"top layer: {f}" for f in FAMILIES)]
    table = Table(columns)
    values = _task_values(run, task)
    for backend in sorted(values):
        cells = values[backend]
        row: list[Any] = [backend, *(cells.get(m, math.nan) for _, m in OUTPUT)]
        row += [_layer(cells.get(f"most_divergent_{f}")) for f in FAMILIES]
        table.rows.append(row)
    return table


def _task_values(run: RunView, task: str) -> dict[str, dict[str, float]]:
    values: dict[str, dict[str, float]] = {}
    for row in run.rows:
        if row["task"] == task and row["level"] == "task":
            values.setdefault(row["backend"], {})[row["metric"]] = row["value"]
    return values


def _layer(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else str(int(value))
