"""Figures for ``report.html``: matplotlib figures embedded as PNG data, so the page stays one
file that works offline and reads without JavaScript (an image with alt text and a caption).

:func:`figure_html` is public: a plugin's report section draws its own figure and embeds it
the same way. The core's figures (scores by category, latency distributions) are here too.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

#: Figures drawn per kind at most (a run with 40 tasks gets the first ones; tables have all).
MAX_FIGURES = 8
PALETTE = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3")


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only Agg backend, or None when it is not installed."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_html(figure: Any, alt: str, caption: str | None = None, id: str | None = None) -> str:
    """A matplotlib figure as an HTML ``<figure>`` (a PNG inside the page, its alt text, an
    optional caption); the figure is closed. For ``report_sections`` hooks that plot."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    figure.clf()
    plt = pyplot()
    if plt is not None:
        plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    anchor = f' id="{html.escape(id)}"' if id else ""
    text = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
    return (
        f'<figure{anchor} class="plot"><img src="data:image/png;base64,{data}" '
        f'alt="{html.escape(alt)}">{text}</figure>'
    )


def bar_figure(
    title: str, labels: Sequence[str], series: Mapping[str, Sequence[float]], xlabel: str
) -> Any:
    """Horizontal grouped bars: one group per label, one bar per series (a backend)."""
    plt = pyplot()
    height = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * len(labels) * max(len(series), 1) ** 0.5))
    for index, (name, values) in enumerate(series.items()):
        positions = [i + index * height for i in range(len(labels))]
        shown = [0.0 if math.isnan(v) else v for v in values]
        ax.barh(positions, shown, height=height, label=name, color=PALETTE[index % len(PALETTE)])
    ax.set_yticks([i + height * (len(series) - 1) / 2 for i in range(len(labels))])
    ax.set_yticklabels([_short(label) for label in labels])
    ax.invert_yaxis()
    finite = [v for values in series.values() for v in values if not math.isnan(v)]
    if finite and min(finite) >= 0.0 and max(finite) <= 1.0:
        ax.set_xlim(0.0, 1.0)  # a rate: the whole scale, so an empty bar reads as 0
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if len(series) > 1:
        ax.legend(loc="best", fontsize="small")
    ax.grid(axis="x", alpha=0.3)
    return fig


def box_figure(title: str, groups: Mapping[str, Sequence[float]], xlabel: str) -> Any:
    """Horizontal box plots, one per group (log scale when the values span two decades)."""
    plt = pyplot()
    labels = list(groups)
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.35 * len(labels)))
    data = [_thinned(groups[k]) for k in labels]
    ax.boxplot(data, orientation="horizontal", showfliers=True, flierprops={"markersize": 2})
    ax.set_yticks(range(1, len(labels) + 1))
    ax.set_yticklabels([_short(label) for label in labels])
    values = [v for k in labels for v in groups[k] if v > 0]
    if values and max(values) / max(min(values), 1e-9) > 100:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _thinned(values: Sequence[float], most: int = 5_000) -> list[float]:
    """At most ``most`` values, every k-th of them sorted (the quantiles hold; thousands of
    outlier markers would only slow the drawing)."""
    ordered = sorted(values)
    step = max(1, len(ordered) // most)
    return ordered[::step]


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
