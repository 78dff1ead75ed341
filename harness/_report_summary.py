"""What the report's first screen says: each task's headline score per backend with a 95%
confidence interval, what the run cost, and the figures drawn from one pass over the records
(scores by category, latency distributions).

The headline metric of a task is the one its ``info()`` declares (``"headline"``), else the
first 0/1 metric among ``accuracy``, ``success``, ``exact_match``, ``acc``, else the first 0/1
metric by name, else the first metric.
"""

from __future__ import annotations

import html
import math
from array import array
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from statistics import NormalDist
from typing import Any

from harness._figures import MAX_FIGURES
from harness._figures import bar_figure
from harness._figures import box_figure
from harness._figures import figure_html
from harness._figures import pyplot
from harness._report_browser import PREFERRED
from harness._report_browser import Picker
from harness._results import JSON
from harness._results import NO_SCORES

#: Latencies kept per (task, backend) for the distribution figure (a stride beyond).
MAX_LATENCIES = 200_000


def is_binary_row(row: JSON) -> bool:
    """A 0/1 metric's row: the core leaves its median empty (NaN) and the mean is a share
    (a task's own aggregate, such as a perplexity, has no median either)."""
    median, value = row.get("median"), row.get("value")
    share = isinstance(value, float) and 0.0 <= value <= 1.0
    return share and isinstance(median, float) and math.isnan(median)


def headline_metrics(rows: Sequence[JSON], task_info: dict[str, Any]) -> dict[str, str]:
    """The headline metric of every task (see the module's docs)."""
    by_task: dict[str, list[JSON]] = {}
    for row in rows:
        if row["level"] == "task" and row["metric"] != NO_SCORES and ":" not in row["metric"]:
            by_task.setdefault(row["task"], []).append(row)
    return {task: _headline(found, task_info.get(task) or {}) for task, found in by_task.items()}


def _headline(rows: list[JSON], info: dict[str, Any]) -> str:
    names = list(dict.fromkeys(r["metric"] for r in rows))
    if info.get("headline") in names:
        return str(info["headline"])
    binary = sorted({r["metric"] for r in rows if is_binary_row(r)})
    preferred = [m for m in PREFERRED if m in binary]
    return (preferred or binary or names)[0]


def interval(row: JSON) -> tuple[float, float] | None:
    """A 95% confidence interval of the row's mean: Wilson's score interval for a 0/1 metric
    (good at small n and near 0 or 1, where the normal one is not), the normal one from the
    standard error otherwise; None with fewer than two values."""
    n, mean = int(row.get("n") or 0), float(row["value"])
    if n < 2 or math.isnan(mean):
        return None
    if is_binary_row(row):
        return wilson(mean, n)
    stderr = float(row.get("stderr") or math.nan)
    if math.isnan(stderr):
        return None
    return mean - Z95 * stderr, mean + Z95 * stderr


Z95 = NormalDist().inv_cdf(0.975)


def wilson(p: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``p`` observed in ``n`` trials (Wilson 1927;
    the same as scipy's ``binomtest(...).proportion_ci(method="wilson")``, without importing
    scipy into every run's report)."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# --- one pass over the records ----------------------------------------------------------------


@dataclass
class Cost:
    """What one (task, backend) cost: samples, errors, retries, seconds and tokens."""

    samples: int = 0
    errors: int = 0
    retries: int = 0
    seconds: float = 0.0
    tokens: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))

    def add(self, record: JSON) -> None:
        timing = record.get("timing") or {}
        seconds = timing.get("total_s") or 0.0
        self.samples += 1
        if record.get("error") is not None:
            self.errors += 1
        retries = record.get("retries")
        if retries:
            self.retries += int(retries)
        self.seconds += seconds
        self.tokens += (timing.get("input_tokens") or 0) + (timing.get("output_tokens") or 0)
        if len(self.latencies) < MAX_LATENCIES or self.samples % 10 == 0:
            self.latencies.append(seconds)


class Digest:
    """What the report needs of the records beyond the aggregates (costs, latencies, the
    browser's samples), fed one record at a time: by the run as samples finish (so the
    report does not read ``samples.jsonl`` again), or by one pass over the file."""

    def __init__(self, declared: dict[str, str], groups: int) -> None:
        self.costs: dict[tuple[str, str], Cost] = {}
        self.picker = Picker(declared, groups)

    def add(self, record: JSON) -> None:
        key = (record["task"], record["backend"])
        found = self.costs.get(key)
        if found is None:
            found = self.costs[key] = Cost()
        found.add(record)
        self.picker.add(record)

    @classmethod
    def read(cls, records: Iterable[JSON], declared: dict[str, str], groups: int) -> Digest:
        digest = cls(declared, groups)
        for record in records:
            digest.add(record)
        return digest


def declared_headlines(task_info: dict[str, Any]) -> dict[str, str]:
    """The headline metric each task declares in its ``info()``."""
    return {t: str(i["headline"]) for t, i in task_info.items() if (i or {}).get("headline")}


# --- HTML ---------------------------------------------------------------------------------------


def headline_table(rows: Sequence[JSON], headlines: dict[str, str]) -> str:
    """Task x backend: the headline metric's mean, its 95% interval and n."""
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    cells = {
        (r["task"], r["backend"]): r
        for r in rows
        if r["level"] == "task" and headlines.get(r["task"]) == r["metric"]
    }
    head = "".join(f'<th scope="col">{html.escape(b)}</th>' for b in backends)
    body = []
    for task, metric in headlines.items():
        row = "".join(f"<td>{_score_cell(cells.get((task, b)))}</td>" for b in backends)
        label = f"{html.escape(task)} <small>({html.escape(metric)})</small>"
        body.append(f'<tr><th scope="row">{label}</th>{row}</tr>')
    return (
        f'<table id="headline"><caption>Headline score per task (mean, 95% interval, n)'
        f'</caption><thead><tr><th scope="col">task (metric)</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _score_cell(row: JSON | None) -> str:
    if row is None:
        return ""
    ci = interval(row)
    span = f" <small>[{ci[0]:.3f}, {ci[1]:.3f}]</small>" if ci else ""
    return f"<b>{row['value']:.3f}</b>{span} <small>n={int(row['n'])}</small>"


def cost_table(costs: dict[tuple[str, str], Cost]) -> str:
    """What each (task, backend) cost, with a total row."""
    columns = ("task", "backend", "samples", "errors", "retries", "time s", "tokens", "tokens/s")
    head = "".join(f'<th scope="col">{c}</th>' for c in columns)
    total = Cost()
    lines = []
    for (task, backend), cost in sorted(costs.items()):
        lines.append(_cost_row(html.escape(task), html.escape(backend), cost))
        total.samples += cost.samples
        total.errors, total.retries = total.errors + cost.errors, total.retries + cost.retries
        total.seconds, total.tokens = total.seconds + cost.seconds, total.tokens + cost.tokens
    lines.append(_cost_row("<b>all</b>", "", total))
    return (
        f'<table id="cost"><caption>What the run cost (time: the samples\' own, summed)'
        f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"
    )


def _cost_row(task: str, backend: str, cost: Cost) -> str:
    rate = f"{cost.tokens / cost.seconds:.1f}" if cost.seconds and cost.tokens else ""
    warn = ' class="warn"' if cost.errors else ""
    cells = [
        str(cost.samples),
        f"<span{warn}>{cost.errors}</span>",
        str(cost.retries),
        f"{cost.seconds:.1f}",
        f"{cost.tokens:,}",
        rate,
    ]
    return (
        f"<tr><td>{task}</td><td>{backend}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
    )


def figures(
    rows: Sequence[JSON], headlines: dict[str, str], costs: dict[tuple[str, str], Cost]
) -> list[str]:
    """The core's figures, each only when it compares something (two bars or more; latencies
    of a backend that took time): scores by category (or by task) and latency distributions.
    A run with nothing to compare (one replayed sample) draws none and never loads
    matplotlib."""
    plans = [*_category_plans(rows, headlines), *_latency_plans(costs)]
    if not plans:
        return []
    if pyplot() is None:
        return [
            '<p class="warn">Figures need matplotlib (<code>pip install matplotlib</code>).</p>'
        ]
    return [draw() for draw in plans]


def took_time(cost: Cost) -> bool:
    """Latencies worth a figure: a model's (median above 1 ms), not a replay's bookkeeping."""
    values = sorted(cost.latencies)
    return len(values) >= 2 and values[len(values) // 2] > 1e-3


def _latency_plans(costs: dict[tuple[str, str], Cost]) -> list[Callable[[], str]]:
    groups = {
        f"{t} / {b}": list(c.latencies) for (t, b), c in sorted(costs.items()) if took_time(c)
    }
    if not groups:
        return []
    shown = dict(list(groups.items())[:24])
    alt = "Box plots of seconds per sample for each task and backend"
    caption = "Latency per sample (box: quartiles; whiskers: 1.5 IQR)"
    return [
        lambda: figure_html(
            box_figure("Seconds per sample", shown, "seconds"), alt, caption, id="fig-latency"
        )
    ]


def _category_plans(rows: Sequence[JSON], headlines: dict[str, str]) -> list[Callable[[], str]]:
    """Per task with subtasks, its headline per subtask and backend; when no task has any,
    one figure of each task's headline."""
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    plans: list[Callable[[], str]] = []
    for task, metric in list(headlines.items())[:MAX_FIGURES]:
        parts = [
            r for r in rows if r["task"] == task and r["metric"] == metric and r["level"] != "task"
        ]
        labels = list(dict.fromkeys(r["subtask"] for r in parts))
        if len(labels) * len(backends) >= 2:
            plans.append(
                _bars(
                    f"{task}: {metric} by category",
                    labels,
                    parts,
                    "subtask",
                    backends,
                    metric,
                    len(plans),
                )
            )
    if plans or not headlines:
        return plans
    tops = [r for r in rows if r["level"] == "task" and headlines.get(r["task"]) == r["metric"]]
    if len(headlines) * len(backends) < 2:
        return []
    return [_bars("Headline score per task", list(headlines), tops, "task", backends, "score", 0)]


def _bars(
    title: str,
    labels: list[str],
    rows: list[JSON],
    by: str,
    backends: list[str],
    axis: str,
    index: int,
) -> Callable[[], str]:
    values = {(r[by], r["backend"]): r["value"] for r in rows}
    series = {b: [values.get((label, b), math.nan) for label in labels] for b in backends}
    alt = f"Bar chart: {title}, one bar per backend"
    return lambda: figure_html(
        bar_figure(title, labels, series, axis), alt, title, id=f"fig-categories-{index}"
    )
