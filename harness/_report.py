"""``report.html`` (a self-contained page of the run's tables, plus the sections plugins add
through the ``report_sections`` hook) and ``harness compare`` (runs side by side).

The core knows no plugin's fields: BFCL's error types, SpecTool's patterns and every later
plugin's views arrive as :class:`~harness.ReportSection` objects.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from harness._results import JSON
from harness._results import MANIFEST
from harness._results import NAN
from harness._results import NO_SCORES
from harness._results import RESULTS
from harness._results import SUMMARY
from harness._results import SUMMARY_COLUMNS
from harness._results import RunView
from harness._results import error_count
from harness._results import load_results
from harness._store import SAMPLES
from harness._store import write_atomic

if TYPE_CHECKING:
    import pandas as pd

    from harness._plugins import PluginHost

log = logging.getLogger("harness")

REPORT = "report.html"
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}code{background:#f6f6f6}
.warn{color:#a40}
"""


@dataclass
class Table:
    """A small table (header and rows) printed as text or HTML: what the CLI and the report
    show, without importing pandas into every run."""

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.rows

    def _cells(self, number: str) -> list[list[str]]:
        return [[_format(v, number) for v in row] for row in self.rows]

    def to_text(self, number: str = "{:.4f}") -> str:
        cells = self._cells(number)
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(self.columns)]
        numeric = [
            any(isinstance(r[i], float | int) for r in self.rows) for i in range(len(widths))
        ]

        def line(values: list[str]) -> str:
            return "  ".join(
                v.rjust(w) if right else v.ljust(w)
                for v, w, right in zip(values, widths, numeric, strict=True)
            ).rstrip()

        return "\n".join([line(self.columns), *(line(r) for r in cells)])

    def to_html(self, number: str = "{:.4f}") -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
            for row in self._cells(number)
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _format(value: Any, number: str) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else number.format(value)
    return "" if value is None else str(value)


def score_table(rows: Sequence[JSON]) -> Table:
    """Rows (task, part, metric), one column per backend: the table users read first.

    ``part`` is ``(all)`` for the whole task, a subtask's name, or ``[name]`` for a group.
    """
    scored = [r for r in rows if r["metric"] != NO_SCORES and math.isnan(r["median"])]
    backends = list(dict.fromkeys(r["backend"] for r in scored))
    cells: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in scored:
        key = (r["task"], _part(r["level"], r["subtask"]), r["metric"])
        cells.setdefault(key, {})[r["backend"]] = r["value"]
    table = Table(["task", "part", "metric", *backends])
    for key, values in cells.items():
        table.rows.append([*key, *(values.get(b, NAN) for b in backends)])
    return table


def distribution_table(rows: Sequence[JSON]) -> Table:
    """Whole-task rows of the metrics that are not 0/1 valued (latency, tokens/s, memory):
    median with the 10th and 90th percentiles, a row per task, backend and metric."""
    spread = [r for r in rows if r["level"] == "task" and not math.isnan(r["median"])]
    stats = ("median", "p10", "p90")
    table = Table(["task", "backend", "metric", *stats])
    for r in sorted(spread, key=lambda r: (r["task"], r["backend"], r["metric"])):
        table.rows.append([r["task"], r["backend"], r["metric"], *(r[s] for s in stats)])
    return table


def aggregates_table(rows: Sequence[JSON]) -> Table:
    """Every aggregate row, with ``summary.csv``'s columns."""
    return Table(list(SUMMARY_COLUMNS), [[r[c] for c in SUMMARY_COLUMNS] for r in rows])


def _part(level: str, subtask: str) -> str:
    return {"task": "(all)", "group": f"[{subtask}]"}.get(level, subtask)


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n"


def render_report(
    run: Path | RunView, host: PluginHost | None = None, failures: list[str] | None = None
) -> str:
    """The report page: provenance, scores, measurements, every aggregate, the sections that
    plugins add, then the samples that could not be scored. ``run`` is a run directory or the
    run as already aggregated; ``failures`` collects the report hooks that raised."""
    view = run if isinstance(run, RunView) else RunView.open(run)
    rows, manifest = view.rows, view.manifest
    name = html.escape(str(manifest.get("name", view.run_dir.name)))
    parts = [f"<h1>harness run: {name}</h1>", _provenance(manifest)]
    table = score_table(rows)
    parts.append(_section("Scores", table.to_html() if not table.empty else "<p>No scores.</p>"))
    spread = distribution_table(rows)
    if not spread.empty:
        parts.append(_section("Measurements (median, p10, p90)", spread.to_html("{:.4g}")))
    parts.append(_section("All aggregates", aggregates_table(rows).to_html()))
    parts += _plugin_sections(view, host, failures if failures is not None else [])
    if view.failures:
        note = (
            f"<p class=warn>{error_count(rows)} sample(s) could not be scored "
            "and are left out of the means (first ones below).</p>"
        )
        errors = Table(list(view.failures[0]), [list(f.values()) for f in view.failures])
        parts.append(_section("Errors", note + errors.to_html()))
    body = "\n".join(parts)
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{name}</title>"
        f"<style>{STYLE}</style></head><body>{body}</body></html>\n"
    )


def _provenance(manifest: dict[str, Any]) -> str:
    env = manifest.get("environment", {})
    items = {
        "harness": env.get("harness"),
        "python": env.get("python"),
        "platform": env.get("platform"),
        "started": manifest.get("started_at"),
        "manifest sha256": manifest.get("manifest_sha256"),
        "seed": manifest.get("seed"),
    }
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(str(v))}</code></td></tr>"
        for k, v in items.items()
        if v is not None
    )
    files = f"<p>Files: {RESULTS}, {SUMMARY}, {SAMPLES}, {MANIFEST}</p>"
    return f"<table>{rows}</table>{files}" if rows else files


def _plugin_sections(view: RunView, host: PluginHost | None, failed: list[str]) -> list[str]:
    from harness._plugins import PluginHost

    sections, failures = (host or PluginHost.current()).report_sections(view)
    failed += failures
    out = [_section(s.title, s.html) for s in sections]
    for failure in failures:
        log.warning("report section of %s", failure)
    if failures:
        items = "".join(f"<li>{html.escape(f)}</li>" for f in failures)
        out.append(_section("Report sections that failed", f"<ul class=warn>{items}</ul>"))
    return out


def write_report(
    run: Path | RunView, host: PluginHost | None = None, failures: list[str] | None = None
) -> Path:
    path = (run.run_dir if isinstance(run, RunView) else Path(run)) / REPORT
    write_atomic(path, render_report(run, host, failures))  # lone surrogates: escaped
    return path


# --- harness compare ------------------------------------------------------------------------


def compare_table(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Pivot the aggregates of several runs; columns are ``run/backend``.

    Two run directories with the same folder name are told apart by their parent folder.
    """
    import pandas as pd

    paths = [Path(d) for d in run_dirs]
    frames = []
    for label, path in zip(_unique_labels(paths), paths, strict=True):
        frame = load_results([path])
        variant = _variants(path)
        frames.append(frame.assign(column=label + "/" + frame["backend"].astype(str) + variant))
    frame = pd.concat(frames, ignore_index=True)
    frame = frame[frame["metric"] != NO_SCORES]
    if frame.empty:
        return pd.DataFrame()
    parts = [_part(r.level, r.subtask) for r in frame.itertuples()]
    frame = frame.assign(part=parts)
    order = list(dict.fromkeys(frame["column"]))
    rows = list(dict.fromkeys(zip(frame["task"], frame["part"], frame["metric"], strict=True)))
    table = frame.pivot_table(
        index=["task", "part", "metric"], columns="column", values="value", sort=False
    )
    table.columns.name = None
    return table.reindex(rows)[order]


def _variants(run_dir: Path) -> str:
    """`` (prompt)``: the variants the run's tasks declared (``info()["variant"]``, e.g. how
    tool calls were asked for), so differently prompted runs never share a column."""
    tasks = RunView.read_manifest(run_dir).get("data", {})
    variants = sorted({str(info["variant"]) for info in tasks.values() if info.get("variant")})
    return f" ({','.join(variants)})" if variants else ""


def _unique_labels(paths: list[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    return [
        f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n
        for p, n in zip(paths, names, strict=True)
    ]
