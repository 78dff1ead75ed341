"""``report.html`` (a self-contained page of the run's tables, plus the sections plugins add
through the ``report_sections`` hook) and ``harness compare`` (runs side by side).

The core knows no plugin's fields: BFCL's error types, SpecTool's patterns and every later
plugin's views arrive as :class:`~harness.ReportSection` objects.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pandas as pd

from harness._results import MANIFEST
from harness._results import NO_SCORES
from harness._results import RESULTS
from harness._results import SUMMARY
from harness._results import RunView
from harness._results import error_count
from harness._results import load_results
from harness._store import SAMPLES
from harness._store import iter_records
from harness._store import write_atomic

if TYPE_CHECKING:
    from harness._plugins import PluginHost

log = logging.getLogger("harness")

REPORT = "report.html"
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:80rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3}td{font-variant-numeric:tabular-nums}code{background:#f6f6f6}
.warn{color:#a40}
"""


def score_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows (task, part, metric), one column per backend: the table users read first.

    ``part`` is ``(all)`` for the whole task, a subtask's name, or ``[name]`` for a group.
    """
    scored = frame[(frame["metric"] != NO_SCORES) & frame["median"].isna()]
    if scored.empty:
        return pd.DataFrame()
    scored = scored.assign(part=[_part(r.level, r.subtask) for r in scored.itertuples()])
    order = list(dict.fromkeys(zip(scored["task"], scored["part"], scored["metric"], strict=True)))
    table = scored.pivot_table(
        index=["task", "part", "metric"], columns="backend", values="value", sort=False
    )
    table.columns.name = None
    return table.reindex(order)


def distribution_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Whole-task rows of the metrics that are not 0/1 valued (latency, tokens/s, memory):
    median with the 10th and 90th percentiles, one column group per backend."""
    rows = frame[(frame["level"] == "task") & frame["median"].notna()]
    if rows.empty:
        return pd.DataFrame()
    table = rows.pivot_table(
        index=["task", "metric"], columns="backend", values=["median", "p10", "p90"], sort=False
    )
    table = table.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0, sort_remaining=False)
    table.columns.names = [None, None]
    return table


def _part(level: str, subtask: str) -> str:
    return {"task": "(all)", "group": f"[{subtask}]"}.get(level, subtask)


def _section(title: str, body: str) -> str:
    return f"<h2>{html.escape(title)}</h2>\n{body}\n"


def _failed_samples(run_dir: Path, limit: int = 50) -> pd.DataFrame:
    """The first samples that could not be scored, or that a metric failed on."""
    rows = []
    for rec in iter_records(run_dir / SAMPLES):
        failures = [f"metric {k!r}: {v}" for k, v in (rec.get("metric_errors") or {}).items()]
        if rec.get("error") or failures:
            row = {k: rec.get(k) for k in ("backend", "task", "sample_id")}
            rows.append(row | {"error": "; ".join([*filter(None, [rec.get("error")]), *failures])})
            if len(rows) >= limit:
                break
    return pd.DataFrame(rows)


def render_report(
    run_dir: Path, host: PluginHost | None = None, failures: list[str] | None = None
) -> str:
    """The report page: provenance, scores, measurements, every aggregate, the sections that
    plugins add, then the samples that could not be scored. ``failures`` collects the report
    hooks that raised."""
    view = RunView.open(run_dir)
    frame, manifest = view.aggregates, view.manifest
    name = html.escape(str(manifest.get("name", run_dir.name)))
    parts = [f"<h1>harness run: {name}</h1>", _provenance(manifest)]
    table = score_table(frame)
    parts.append(
        _section(
            "Scores", table.to_html(float_format="%.4f") if not table.empty else "<p>No scores.</p>"
        )
    )
    spread = distribution_table(frame)
    if not spread.empty:
        parts.append(
            _section("Measurements (median, p10, p90)", spread.to_html(float_format="%.4g"))
        )
    parts.append(_section("All aggregates", frame.to_html(index=False, float_format="%.4f")))
    parts += _plugin_sections(view, host, failures if failures is not None else [])
    errors = _failed_samples(run_dir)
    if not errors.empty:
        note = (
            f"<p class=warn>{error_count(frame)} sample(s) could not be scored "
            "and are left out of the means (first ones below).</p>"
        )
        parts.append(_section("Errors", note + errors.to_html(index=False)))
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
    run_dir: Path, host: PluginHost | None = None, failures: list[str] | None = None
) -> Path:
    path = Path(run_dir) / REPORT
    page = render_report(Path(run_dir), host, failures)
    write_atomic(path, page)  # lone surrogates are written escaped
    return path


# --- harness compare ------------------------------------------------------------------------


def compare_table(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Pivot the aggregates of several runs; columns are ``run/backend``.

    Two run directories with the same folder name are told apart by their parent folder.
    """
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
