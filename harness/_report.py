"""``report.html`` (a self-contained page of the run's tables, plus the sections plugins add
through the ``report_sections`` hook) and ``harness compare`` (runs side by side).

The core knows no plugin's fields: BFCL's error types, SpecTool's patterns and every later
plugin's views arrive as :class:`~harness.ReportSection` objects.
"""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from harness._report_browser import browser_html
from harness._report_summary import Cost
from harness._report_summary import Digest
from harness._report_summary import cost_table
from harness._report_summary import declared_headlines
from harness._report_summary import figures
from harness._report_summary import headline_metrics
from harness._report_summary import headline_table
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
from harness._sensitivity_report import format_sections
from harness._store import SAMPLES
from harness._store import write_atomic

if TYPE_CHECKING:
    import pandas as pd

    from harness._plugins import PluginHost

log = logging.getLogger("harness")

REPORT = "report.html"
NOTHING_TO_PLOT = (
    "<p>Nothing to plot: a figure is drawn when it compares something (two bars or more, "
    "latencies of a backend that took time).</p>"
)
STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#222;line-height:1.4}
header{background:#f6f7f9;border-bottom:1px solid #ddd;padding:1rem 2rem}
header h1{margin:0 0 .4rem;font-size:1.5rem}
nav ul{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.2rem 1rem}
main{padding:0 2rem 2rem;max-width:90rem}
section{margin-top:1.5rem}
table{border-collapse:collapse;margin:.8rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3;text-align:left}td{font-variant-numeric:tabular-nums;vertical-align:top}
caption{text-align:left;font-weight:600;padding:.3rem 0}
code{background:#f6f6f6}pre{white-space:pre-wrap;max-height:20rem;overflow:auto;background:#fafafa}
figure.plot{display:inline-block;margin:.5rem 1rem .5rem 0}figure.plot img{max-width:100%}
figcaption{font-size:.9rem;color:#555}
.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center}
#samples tr.sample{cursor:pointer}
#samples tr.sample:hover,#samples tr.sample:focus{background:#eef4ff}
.warn{color:#a40}small{color:#555}
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
    """Rows (task, part, metric), one column per backend: the table users read first. Every
    metric shows its mean, 0/1 or not (latencies' spreads are in :func:`distribution_table`).

    ``part`` is ``(all)`` for the whole task, a subtask's name, or ``[name]`` for a group.
    """
    scored = [r for r in rows if r["metric"] != NO_SCORES]
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
    mean, median and the 10th and 90th percentiles, a row per task, backend and metric."""
    spread = [r for r in rows if r["level"] == "task" and not math.isnan(r["median"])]
    stats = ("value", "median", "p10", "p90")
    table = Table(["task", "backend", "metric", "mean", *stats[1:]])
    for r in sorted(spread, key=lambda r: (r["task"], r["backend"], r["metric"])):
        table.rows.append([r["task"], r["backend"], r["metric"], *(r[s] for s in stats)])
    return table


def aggregates_table(rows: Sequence[JSON]) -> Table:
    """Every aggregate row, with ``summary.csv``'s columns."""
    return Table(list(SUMMARY_COLUMNS), [[r[c] for c in SUMMARY_COLUMNS] for r in rows])


def _part(level: str, subtask: str) -> str:
    return {"task": "(all)", "group": f"[{subtask}]"}.get(level, subtask)


def _section(title: str, body: str, anchor: str | None = None) -> str:
    ident = f' id="{html.escape(anchor)}"' if anchor else ""
    return f"<section{ident}><h2>{html.escape(title)}</h2>\n{body}\n</section>\n"


def render_report(
    run: Path | RunView,
    host: PluginHost | None = None,
    failures: list[str] | None = None,
    digest: Digest | None = None,
) -> str:
    """The report page: the summary first (headline scores with 95% intervals, what the run
    cost), the figures, the sections plugins add, the tables, the sample browser, then the
    samples that could not be scored and the provenance. ``run`` is a run directory or the
    run as already aggregated; ``failures`` collects the report hooks that raised. One pass
    over ``samples.jsonl`` feeds the costs, the latency figure and the browser."""
    view = run if isinstance(run, RunView) else RunView.open(run)
    rows, manifest = view.rows, view.manifest
    headlines = headline_metrics(rows, manifest.get("data") or {})
    if digest is None:  # one pass over samples.jsonl (a run feeds its digest as it plays)
        groups = len({(r["task"], r["backend"]) for r in rows})
        declared = declared_headlines(manifest.get("data") or {})
        digest = Digest.read(view.records(), declared, groups)
    costs, picker = digest.costs, digest.picker
    parts = [_section("Summary", _summary(view, headlines, costs), "summary")]
    if len({r["backend"] for r in rows}) > 1 and headlines:
        body = _paired(view.run_dir, sorted(set(headlines.values())))
        parts.append(_section("Backends compared, sample by sample", body, "compared"))
    drawn = "".join(figures(rows, headlines, costs)) or NOTHING_TO_PLOT
    parts.append(_section("Figures", drawn, "figures"))
    parts += [_section(t, body, "format-" + _slug(t)) for t, body in format_sections(view.run_dir)]
    parts += _plugin_sections(view, host, failures if failures is not None else [])
    parts.append(_section("Tables", _tables(rows), "tables"))
    chosen = picker.chosen(headlines)
    parts.append(_section("Samples", browser_html(chosen, picker.note()), "browser"))
    if view.failures:
        parts.append(_section("Errors", _errors(view), "errors"))
    parts.append(_section("Provenance", _provenance(manifest), "provenance"))
    return _page(str(manifest.get("name", view.run_dir.name)), parts)


def _page(name: str, parts: list[str]) -> str:
    title = html.escape(name)
    links = "".join(
        f'<li><a href="#{anchor}">{html.escape(label)}</a></li>'
        for anchor, label in re.findall(r'<section id="([^"]+)"><h2>([^<]+)</h2>', "".join(parts))
    )
    nav = f'<nav aria-label="Sections"><ul>{links}</ul></nav>'
    body = "\n".join(parts)
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>harness run: {title}</h1>{nav}</header><main>{body}</main></body></html>\n"
    )


def _summary(view: RunView, headlines: dict[str, str], costs: dict[tuple[str, str], Cost]) -> str:
    rows = view.rows
    samples = sum(c.samples for c in costs.values())
    errors = sum(c.errors for c in costs.values())
    backends = len({r["backend"] for r in rows})
    line = (
        f"<p>{samples} sample(s) over {len(headlines)} task(s) and {backends} backend(s); "
        f"{errors} error(s). Started {html.escape(str(view.manifest.get('started_at', '?')))}."
        "</p>"
    )
    scores = headline_table(rows, headlines) if headlines else "<p>No scores.</p>"
    return line + scores + cost_table(costs)


def _paired(run_dir: Path, metrics: list[str]) -> str:
    """Every backend against the first on the headline metrics, paired per sample (as
    ``harness compare RUN_DIR`` does, with 2,000 bootstrap resamples)."""
    from harness._compare import Settings
    from harness._compare import compare_rows
    from harness._compare import compare_section
    from harness._compare import load_columns

    columns = load_columns([run_dir])
    rows = compare_rows(columns, Settings(resamples=2_000, metrics=metrics))
    intro = (
        "<p>Each backend's difference from the first on the samples both scored, with a "
        "bootstrap 95% interval, and McNemar's exact test on 0/1 metrics. "
        "<code>harness compare</code> does the same for any runs (docs/compare.md).</p>"
    )
    return intro + compare_section(rows)


def _tables(rows: Sequence[JSON]) -> str:
    table = score_table(rows)
    out = "<h3>Scores (means)</h3>" + (table.to_html() if not table.empty else "<p>No scores.</p>")
    spread = distribution_table(rows)
    if not spread.empty:
        out += "<h3>Measurements (mean, median, p10, p90)</h3>" + spread.to_html("{:.4g}")
    every = aggregates_table(rows).to_html()
    return out + f"<details><summary>All aggregates ({len(rows)} rows)</summary>{every}</details>"


def _errors(view: RunView) -> str:
    note = (
        f"<p class=warn>{error_count(view.rows)} sample(s) could not be scored "
        "and are left out of the means (first ones below).</p>"
    )
    errors = Table(list(view.failures[0]), [list(f.values()) for f in view.failures])
    return note + errors.to_html()


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
    out = [_section(s.title, s.html, "plugin-" + _slug(s.title)) for s in sections]
    for failure in failures:
        log.warning("report section of %s", failure)
    if failures:
        items = "".join(f"<li>{html.escape(f)}</li>" for f in failures)
        out.append(_section("Report sections that failed", f"<ul class=warn>{items}</ul>"))
    return out


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def write_report(
    run: Path | RunView,
    host: PluginHost | None = None,
    failures: list[str] | None = None,
    digest: Digest | None = None,
) -> Path:
    path = (run.run_dir if isinstance(run, RunView) else Path(run)) / REPORT
    write_atomic(path, render_report(run, host, failures, digest))  # lone surrogates: escaped
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
