"""The report's "Format sensitivity" section: what ``results.json``'s ``format_sensitivity``
says (see :mod:`harness._sensitivity`), as tables and one plot per task."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from harness._figures import PALETTE
from harness._figures import figure_html
from harness._figures import pyplot
from harness._formats import parse_format

RESULTS = "results.json"


def format_sections(run_dir: Path) -> list[tuple[str, str]]:
    """``(title, html)`` per task with format configurations; none when the run has none."""
    try:
        probe = json.loads((run_dir / RESULTS).read_text(encoding="utf-8"))["format_sensitivity"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [(f"Format sensitivity: {task}", task_html(task, probe[task])) for task in probe]


def task_html(task: str, entry: dict[str, Any]) -> str:
    parts = [_summary_table(entry)]
    for backend, metrics in entry["backends"].items():
        for metric, found in metrics.items():
            parts.append(_axes_table(backend, metric, found))
    parts.append(_ranking(entry.get("ranking") or {}))
    parts.append(_plot(task, entry))
    return "\n".join(p for p in parts if p)


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _ci(pair: Any) -> str:
    if not pair or None in pair:
        return ""
    return f" [{pair[0]:.4f}, {pair[1]:.4f}]"


def _summary_table(entry: dict[str, Any]) -> str:
    head = (
        "<tr><th>backend</th><th>metric</th><th>configurations</th><th>spread (max - min)"
        "</th><th>std</th><th>most sensitive axis</th><th>best</th><th>worst</th></tr>"
    )
    rows = []
    for backend, metrics in entry["backends"].items():
        for metric, f in metrics.items():
            cells = [
                backend,
                metric,
                str(len(f["configurations"])),
                _fmt(f["spread"]) + _ci(f["spread_ci"]),
                _fmt(f["std"]) + _ci(f["std_ci"]),
                str(f["most_sensitive_axis"] or "-"),
                str(f["best"] or "-"),
                str(f["worst"] or "-"),
            ]
            rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    note = (
        "<p>Intervals: 95% percentile bootstrap over items (each drawn item kept under every "
        "configuration).</p>"
    )
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _axes_table(backend: str, metric: str, found: dict[str, Any]) -> str:
    head = "<tr><th>axis</th><th>effect</th><th>pairs</th><th>mean score per value</th></tr>"
    rows = []
    for axis, a in sorted(found["axes"].items(), key=lambda kv: -(kv[1]["effect"] or 0.0)):
        values = ", ".join(f"{v}: {_fmt(m)}" for v, m in a["values"].items())
        cells = [axis, _fmt(a["effect"]) + _ci(a["effect_ci"]), str(a["pairs"]), values]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    title = f"<h3>{html.escape(backend)} · {html.escape(metric)}: effect of each axis</h3>"
    note = (
        "<p>Effect: the mean |difference| between configurations that differ in that axis "
        "alone.</p>"
    )
    return f"{title}<table>{head}{''.join(rows)}</table>{note}"


def _ranking(ranking: dict[str, Any]) -> str:
    out = []
    for metric, r in ranking.items():
        out.append(
            f"<p>Ranking of backends by {html.escape(metric)} across configurations: Kendall's "
            f"tau mean {_fmt(r['kendall_tau_mean'])}, min {_fmt(r['kendall_tau_min'])} over "
            f"{r['pairs']} pairs of configurations.</p>"
        )
    return "".join(out)


def short_label(name: str) -> str:
    """A configuration's values only (``json/True/xml/plaintext/classic``)."""
    return "/".join(parse_format(name).values()) or name


def _plot(task: str, entry: dict[str, Any]) -> str:
    plt = pyplot()
    backends = entry["backends"]
    if plt is None or not backends:
        return ""
    first = next(iter(backends.values()))
    metric = "accuracy" if "accuracy" in first else next(iter(first))
    configs = list(first[metric]["configurations"])
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.26 * len(configs) * max(len(backends), 1) ** 0.5))
    height = 0.8 / len(backends)
    for index, (backend, metrics) in enumerate(backends.items()):
        scores = metrics.get(metric, {}).get("configurations", {})
        values = [(scores.get(c) or {}).get("value") or 0.0 for c in configs]
        positions = [i + index * height for i in range(len(configs))]
        color = PALETTE[index % len(PALETTE)]
        ax.barh(positions, values, height=height, label=backend, color=color)
    ax.set_yticks([i + height * (len(backends) - 1) / 2 for i in range(len(configs))])
    ax.set_yticklabels([short_label(c) for c in configs], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel(metric)
    ax.set_title(f"{task}: {metric} per configuration")
    ax.grid(axis="x", alpha=0.3)
    if len(backends) > 1:
        ax.legend(loc="best", fontsize="small")
    alt = f"{metric} of each backend under each prompt configuration of {task}"
    caption = "Labels: the configuration's axis values, in the order of its name."
    return figure_html(fig, alt, caption)
