"""``harness compare``: whether the difference between two columns is real.

A column is one backend of one run directory (``run/backend``, labelled as the side-by-side
means table labels it). The first column is the baseline A; every other column B is compared
with it sample by sample, per (task, metric) and, on request, per subtask:

- a sample pairs when both columns scored it (no error, the metric present) under the same
  (task, sample_id); repeats of a sample are averaged first, so each sample counts once;
- paired rows give the mean difference B - A with a bootstrap interval over the samples and,
  for 0/1 metrics, the samples that flipped each way with McNemar's exact test;
- when no sample pairs, the row says ``unpaired`` and compares the two means, each side
  resampled on its own: different samples are never treated as pairs.

See docs/compare.md. The statistics are in :mod:`harness._stats`.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from dataclasses import replace
from pathlib import Path
from statistics import fmean
from typing import Any

from harness._errors import HarnessError
from harness._report import STYLE
from harness._report import Table
from harness._report import _unique_labels
from harness._report import _variants
from harness._results import RunView
from harness._stats import bootstrap_ci
from harness._stats import bootstrap_diff_ci
from harness._stats import flips
from harness._stats import is_binary
from harness._stats import mcnemar_exact
from harness._store import SAMPLES
from harness._store import iter_records

SampleKey = tuple[str, str]  # task, sample_id
NAN = math.nan
NO_PLOT = "<p>The plot needs matplotlib: <code>pip install -e .[plots]</code>.</p>"
LEGEND = (
    "diff: B - A over the compared samples (n: samples paired; unpaired rows: A+B samples)\n"
    "95% CI: bootstrap (BCa) over samples; p: McNemar's exact test, 0/1 metrics only\n"
    "better/worse: samples A got wrong and B right / A got right and B wrong"
)


@dataclass
class Sample:
    """One sample of one column: its subtask and each metric's mean over scored repeats."""

    subtask: str
    scores: dict[str, float]


@dataclass
class Column:
    """One backend of one run: ``label`` (``run/backend (variant)``) and its samples."""

    label: str
    samples: dict[SampleKey, Sample]


@dataclass
class CompareRow:
    """One comparison of column B with the baseline A on one (task, subtask, metric).

    ``mean_a``/``mean_b`` are over the compared samples (the paired ones when any pair), so
    ``diff`` is their difference; ``p_mcnemar``, ``better`` and ``worse`` only for paired
    0/1 values. ``subtask`` is ``""`` for the whole task.
    """

    a: str
    b: str
    task: str
    subtask: str
    metric: str
    mean_a: float = NAN
    mean_b: float = NAN
    diff: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    p_mcnemar: float = NAN
    better: int | None = None
    worse: int | None = None
    n_paired: int = 0
    only_a: int = 0
    only_b: int = 0
    n_a: int = 0
    n_b: int = 0
    pairing: str = ""


@dataclass
class Settings:
    """How rows are computed: bootstrap resamples and seed, metrics kept, subtask rows."""

    resamples: int = 10_000
    seed: int = 0
    metrics: Sequence[str] = ()
    by_subtask: bool = False


# --- loading ---------------------------------------------------------------------------------


@dataclass
class _Accumulator:
    subtask: str
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, scores: dict[str, Any]) -> None:
        for metric, value in scores.items():
            if isinstance(value, int | float) and value == value:  # None and NaN: no score
                self.values.setdefault(metric, []).append(float(value))

    def sample(self) -> Sample:
        return Sample(self.subtask, {m: fmean(v) for m, v in self.values.items()})


class CompareError(HarnessError):
    """Nothing to compare (a single column), or a ``--metric`` no column scored: usage."""

    exit_code = 2


def checked_columns(run_dirs: Sequence[str | Path], metrics: Sequence[str] = ()) -> list[Column]:
    """The columns, when there are two or more and every metric asked for was scored."""
    columns = load_columns(run_dirs)
    if len(columns) < 2:
        found = ", ".join(c.label for c in columns) or "none"
        raise CompareError(
            f"nothing to compare: one column ({found}); give two run directories, or a run "
            "with two backends (--means lists one run's means)"
        )
    known = metric_names(columns)
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise CompareError(
            f"--metric {', '.join(unknown)}: not scored (known: {', '.join(sorted(known))})"
        )
    return columns


def load_columns(run_dirs: Sequence[str | Path]) -> list[Column]:
    """A column per run and backend, in the order given (backends in manifest order)."""
    paths = [Path(d) for d in run_dirs]
    columns = []
    for label, path in zip(_unique_labels(paths), paths, strict=True):
        variant = _variants(path)
        for backend, samples in _backend_samples(path).items():
            columns.append(Column(f"{label}/{backend}{variant}", samples))
    return columns


def _backend_samples(run_dir: Path) -> dict[str, dict[SampleKey, Sample]]:
    """Each backend's samples; the records of a sample (its repeats) averaged per metric,
    over the records that were scored (an errored repeat adds nothing)."""
    found: dict[str, dict[SampleKey, _Accumulator]] = {}
    for rec in iter_records(run_dir / SAMPLES):
        key = (str(rec["task"]), str(rec["sample_id"]))
        samples = found.setdefault(str(rec["backend"]), {})
        acc = samples.setdefault(key, _Accumulator(str(rec.get("subtask") or "")))
        if rec.get("error") is None:
            acc.add(rec.get("scores") or {})
    order = _manifest_backends(run_dir)
    backends = sorted(found, key=lambda b: (order.index(b) if b in order else len(order), b))
    return {b: {k: acc.sample() for k, acc in found[b].items()} for b in backends}


def _manifest_backends(run_dir: Path) -> list[str]:
    entries = RunView.read_manifest(run_dir).get("manifest", {}).get("backends") or []
    return [str(e.get("id", e.get("type"))) for e in entries if isinstance(e, dict)]


def metric_names(columns: Sequence[Column]) -> set[str]:
    """Every metric any column scored."""
    return {m for c in columns for s in c.samples.values() for m in s.scores}


# --- rows ------------------------------------------------------------------------------------


def compare_rows(columns: Sequence[Column], settings: Settings | None = None) -> list[CompareRow]:
    """Every other column against the first: a row per (task, subtask, metric)."""
    settings = settings or Settings()
    base, *others = columns
    return [
        _row(base, other, cell, settings)
        for other in others
        for cell in _cells(base, other, settings)
    ]


def _cells(a: Column, b: Column, settings: Settings) -> Iterator[tuple[str, str, str]]:
    """(task, subtask, metric) in sorted order; each task's subtasks after the task."""
    samples = [(t, s) for column in (a, b) for (t, _), s in column.samples.items()]
    for task in sorted({t for t, _ in samples}):
        mine = [s for t, s in samples if t == task]
        metrics = sorted({m for s in mine for m in s.scores})
        metrics = [m for m in metrics if not settings.metrics or m in settings.metrics]
        subtasks = sorted({s.subtask for s in mine if s.subtask}) if settings.by_subtask else []
        for subtask in ["", *subtasks]:
            yield from ((task, subtask, m) for m in metrics)


def _values(column: Column, task: str, subtask: str, metric: str) -> dict[str, float]:
    """sample_id → value of the column's samples scored on ``metric`` in task (subtask)."""
    return {
        sid: s.scores[metric]
        for (t, sid), s in column.samples.items()
        if t == task and metric in s.scores and (not subtask or s.subtask == subtask)
    }


def _row(a: Column, b: Column, cell: tuple[str, str, str], settings: Settings) -> CompareRow:
    va, vb = _values(a, *cell), _values(b, *cell)
    paired = [sid for sid in va if sid in vb]
    n = len(paired)
    row = CompareRow(a.label, b.label, *cell, n_paired=n, n_a=len(va), n_b=len(vb))
    row = replace(row, only_a=len(va) - n, only_b=len(vb) - n)
    if paired:
        return _paired(row, [va[s] for s in paired], [vb[s] for s in paired], settings)
    if va and vb:
        return _unpaired(row, list(va.values()), list(vb.values()), settings)
    return replace(
        row, mean_a=_mean(va.values()), mean_b=_mean(vb.values()), pairing=_missing(va, vb)
    )


def _paired(row: CompareRow, x: list[float], y: list[float], settings: Settings) -> CompareRow:
    """Mean difference with its bootstrap interval; flips and McNemar for 0/1 values."""
    diffs = [b - a for a, b in zip(x, y, strict=True)]
    low, high = bootstrap_ci(diffs, settings.resamples, settings.seed)
    row = replace(row, mean_a=fmean(x), mean_b=fmean(y), diff=fmean(diffs))
    row = replace(row, ci_low=low, ci_high=high, pairing=_pairing(row))
    if not is_binary(x, y):
        return row
    better, worse = flips(x, y)
    return replace(row, better=better, worse=worse, p_mcnemar=mcnemar_exact(better, worse))


def _unpaired(row: CompareRow, x: list[float], y: list[float], settings: Settings) -> CompareRow:
    """No sample in common: the two means, each side resampled on its own."""
    low, high = bootstrap_diff_ci(x, y, settings.resamples, settings.seed)
    row = replace(row, mean_a=fmean(x), mean_b=fmean(y), ci_low=low, ci_high=high)
    return replace(row, diff=row.mean_b - row.mean_a, pairing="unpaired")


def _pairing(row: CompareRow) -> str:
    """``paired``, or ``paired 80/100 (15 only in A, 5 only in B)`` when some do not pair."""
    if not row.only_a and not row.only_b:
        return "paired"
    total = row.n_paired + row.only_a + row.only_b
    return f"paired {row.n_paired}/{total} ({row.only_a} only in A, {row.only_b} only in B)"


def _missing(values_a: dict[str, float], values_b: dict[str, float]) -> str:
    if values_a or values_b:
        return "no samples in B" if values_a else "no samples in A"
    return "no samples"


def _mean(values: Any) -> float:
    values = list(values)
    return fmean(values) if values else NAN


# --- rendering -------------------------------------------------------------------------------

TEXT_COLUMNS = ["task", "metric", "A", "B", "diff", "95% CI", "p", "better", "worse", "n"]


def _cells_of(row: CompareRow, by_subtask: bool) -> list[str]:
    """The text cells of a row: numbers formatted, blanks where a figure does not apply."""
    part = [row.subtask or "(all)"] if by_subtask else []
    ci = "" if math.isnan(row.ci_low) else f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}]"
    n = str(row.n_paired) if row.n_paired else f"{row.n_a}+{row.n_b}"
    stats = [_num(row.mean_a), _num(row.mean_b), _num(row.diff, "{:+.4f}"), ci]
    counts = ["" if v is None else str(v) for v in (row.better, row.worse)]
    return [row.task, *part, row.metric, *stats, _p(row.p_mcnemar), *counts, n, row.pairing]


def _num(value: float, number: str = "{:.4f}") -> str:
    return "" if math.isnan(value) else number.format(value)


def _p(value: float) -> str:
    """Four decimals; small p in scientific notation, so it never reads as 0."""
    if math.isnan(value):
        return ""
    return f"{value:.4f}" if value >= 1e-4 else f"{value:.1e}"


def _header(by_subtask: bool) -> list[str]:
    return [*TEXT_COLUMNS[:1], *(["subtask"] if by_subtask else []), *TEXT_COLUMNS[1:], "pairing"]


def _by_b(rows: Sequence[CompareRow]) -> dict[str, list[CompareRow]]:
    groups: dict[str, list[CompareRow]] = {}
    for row in rows:
        groups.setdefault(row.b, []).append(row)
    return groups


def render_text(rows: Sequence[CompareRow], by_subtask: bool = False) -> str:
    """A table per compared column B, under the baseline A's label, then the legend."""
    if not rows:
        return "no scores to compare"
    header = _header(by_subtask)
    parts = [f"A (baseline): {rows[0].a}"]
    for label, group in _by_b(rows).items():
        cells = [_cells_of(r, by_subtask) for r in group]
        parts.append(f"\nB: {label}\n{_text_table(header, cells)}")
    return "\n".join([*parts, "", LEGEND])


def _text_table(header: list[str], cells: list[list[str]]) -> str:
    """Names and the pairing left-aligned, figures right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    names = {"task", "subtask", "metric", "pairing"}
    left = [h in names for h in header]

    def line(values: list[str]) -> str:
        return "  ".join(
            v.ljust(w) if is_left else v.rjust(w)
            for v, w, is_left in zip(values, widths, left, strict=True)
        ).rstrip()

    return "\n".join([line(header), *(line(r) for r in cells)])


def write_csv(rows: Sequence[CompareRow], path: Path, by_subtask: bool = False) -> None:
    """Every field of every row (NaN and missing counts as empty cells)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(CompareRow)])
    for row in rows:
        writer.writerow(["" if _blank(v) else v for v in asdict(row).values()])
    path.write_text(out.getvalue(), encoding="utf-8")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def compare_section(rows: Sequence[CompareRow], by_subtask: bool = False) -> str:
    """The HTML body of the comparison (forest plot, then a table per compared column), for a
    page of its own or a report section."""
    plot = forest_plot(rows)
    parts = [plot if plot is not None else NO_PLOT]
    parts.append(f"<p>A (baseline): <b>{html.escape(rows[0].a if rows else '')}</b></p>")
    for label, group in _by_b(rows).items():
        table = Table(_header(by_subtask), [_cells_of(r, by_subtask) for r in group])
        parts.append(f"<h3>B: {html.escape(label)}</h3>\n{table.to_html()}")
    parts.append(f"<p>{html.escape(LEGEND).replace(chr(10), '<br>')}</p>")
    return "\n".join(parts)


def render_html(rows: Sequence[CompareRow], by_subtask: bool = False) -> str:
    """A self-contained page: the section, with the report's style."""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>harness compare</title><style>{STYLE}</style></head><body>"
        f"<h1>harness compare</h1>\n{compare_section(rows, by_subtask)}\n</body></html>\n"
    )


def write_html(rows: Sequence[CompareRow], path: Path, by_subtask: bool = False) -> None:
    path.write_text(render_html(rows, by_subtask), encoding="utf-8")


def means_text(run_dirs: Sequence[str | Path], metrics: Sequence[str], files: bool) -> str:
    """``--means``: the side-by-side table of means as before (rows task, part, metric; a
    column per run and backend), restricted to ``metrics`` when given."""
    from harness._report import compare_table

    if files:
        raise CompareError("--csv and --html write the paired comparison; drop --means")
    table = compare_table(run_dirs)
    if metrics and not table.empty:
        table = table[table.index.get_level_values("metric").isin(list(metrics))]
    if table.empty:
        return "no scores to compare"
    return str(table.to_string(float_format=lambda v: f"{v:.4f}"))


def forest_plot(rows: Sequence[CompareRow]) -> str | None:
    """Each difference with its interval, a panel per metric (their scales differ), as inline
    SVG; None without matplotlib or without a difference to draw."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    groups: dict[str, list[CompareRow]] = {}
    for row in rows:
        if not math.isnan(row.diff):
            groups.setdefault(row.metric, []).append(row)
    if not groups:
        return None
    sizes = [len(g) + 1 for g in groups.values()]
    fig = Figure(figsize=(7, 0.6 + 0.32 * sum(sizes)))
    axes = fig.subplots(len(groups), 1, squeeze=False, height_ratios=sizes)[:, 0]
    many = len({r.b for r in rows}) > 1
    for ax, (metric, group) in zip(axes, groups.items(), strict=True):
        _forest(ax, metric, group, many)
    fig.tight_layout()
    return _svg(fig)


def _forest(ax: Any, metric: str, rows: list[CompareRow], many: bool) -> None:
    """One panel: a point per row at its difference, a bar over its interval, a line at 0."""
    ys = list(range(len(rows)))[::-1]
    for y, row in zip(ys, rows, strict=True):
        if not math.isnan(row.ci_low):
            ax.plot([row.ci_low, row.ci_high], [y, y], color="#36c", linewidth=1.5)
        ax.plot([row.diff], [y], "o", color="#36c", mfc="white" if row.n_paired == 0 else None)
    ax.axvline(0, color="#888", linewidth=0.8, linestyle="--")
    ax.set_yticks(ys, [_plot_label(r, many) for r in rows], fontsize=7)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_title(f"{metric}: B - A with 95% CI", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)


def _plot_label(row: CompareRow, many: bool) -> str:
    label = f"{row.task}/{row.subtask}" if row.subtask else row.task
    label += f" · {row.b}" if many else ""
    return label + (" (unpaired)" if row.pairing == "unpaired" else "")


def _svg(fig: Any) -> str:
    out = io.StringIO()
    fig.savefig(out, format="svg")
    text = out.getvalue()
    return text[text.index("<svg") :]
