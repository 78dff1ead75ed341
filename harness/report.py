"""``report.html``: a self-contained page of the run's tables (plots come with later plugins)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from harness.results import MANIFEST, NO_SCORES, RESULTS, SUMMARY, aggregate_run, error_count
from harness.store import SAMPLES, iter_records

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
    rows = []
    for rec in iter_records(run_dir / SAMPLES):
        if rec.get("error"):
            rows.append({k: rec.get(k) for k in ("backend", "task", "sample_id", "error")})
            if len(rows) >= limit:
                break
    return pd.DataFrame(rows)


def label_counts(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Why answers failed: counts of ``error_type`` values, and rates of ``patterns`` codes
    (SpecTool) over the samples that carry the field, per task and backend."""
    types: list[tuple[str, str, str]] = []
    patterns: list[tuple[str, str, str]] = []
    carriers: dict[tuple[str, str], int] = {}
    for rec in iter_records(run_dir / SAMPLES):
        key = (rec["task"], rec["backend"])
        if rec.get("error_type"):
            types.append((*key, str(rec["error_type"])))
        if isinstance(rec.get("patterns"), list):
            carriers[key] = carriers.get(key, 0) + 1
            patterns += [(*key, str(code)) for code in rec["patterns"]]
    type_table = pd.DataFrame(types, columns=["task", "backend", "error_type"])
    if not type_table.empty:
        type_table = type_table.value_counts().unstack("backend", fill_value=0).sort_index()
    rates = pd.DataFrame(patterns, columns=["task", "backend", "pattern"])
    if not rates.empty:
        counts = rates.value_counts().rename("n").reset_index()
        counts["rate"] = [
            n / carriers[(t, b)]
            for t, b, n in zip(counts["task"], counts["backend"], counts["n"], strict=True)
        ]
        rates = counts.pivot_table(
            index=["task", "pattern"], columns="backend", values="rate", fill_value=0.0
        )
    return type_table, rates


def _heatmap(table: pd.DataFrame) -> str:
    """An HTML table whose cells are shaded by value (0 to 1): no plotting library needed."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for index, values in table.iterrows():
        label = " / ".join(map(str, index)) if isinstance(index, tuple) else str(index)
        cells = "".join(
            f"<td style='background:rgba(200,40,40,{min(max(v, 0), 1):.2f})'>{v:.3f}</td>"
            for v in values
        )
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}</tr>")
    return f"<table><tr><th>task / pattern</th>{head}</tr>{''.join(rows)}</table>"


def pattern_examples(run_dir: Path, limit: int = 60) -> pd.DataFrame:
    """The first failed samples with their patterns and the evidence: which call, which argument."""
    rows = []
    for rec in iter_records(run_dir / SAMPLES):
        if not rec.get("patterns"):
            continue
        evidence = "; ".join(_evidence(e) for e in (rec.get("pattern_evidence") or [])[:6])
        rows.append(
            {
                "task": rec["task"],
                "backend": rec["backend"],
                "sample_id": rec["sample_id"],
                "patterns": " ".join(rec["patterns"]),
                "evidence": evidence,
            }
        )
        if len(rows) >= limit:
            break
    return pd.DataFrame(rows)


def _evidence(item: dict[str, Any]) -> str:
    where = [
        f"call {item['call_index']}" if item.get("call_index") is not None else "",
        str(item.get("function") or ""),
        str(item.get("argument") or ""),
    ]
    place = " ".join(w for w in where if w)
    return f"{item.get('pattern')}: {place} ({item.get('detail', '')})".replace(" ()", "")


def _label_sections(run_dir: Path) -> list[str]:
    types, rates = label_counts(run_dir)
    out = []
    if not rates.empty:
        note = "<p>Share of samples showing each SpecTool pattern (a sample can show several).</p>"
        out.append(_section("Error profile (SpecTool patterns)", note + _heatmap(rates)))
    examples = pattern_examples(run_dir)
    if not examples.empty:
        out.append(_section("Failed samples: patterns and evidence", examples.to_html(index=False)))
    if not types.empty:
        out.append(_section("Failures by error type", types.to_html()))
    return out


def render_report(run_dir: Path) -> str:
    frame = aggregate_run(run_dir)
    manifest: dict[str, Any] = {}
    if (run_dir / MANIFEST).exists():
        manifest = json.loads((run_dir / MANIFEST).read_text(encoding="utf-8"))
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
    parts += _label_sections(run_dir)
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


def write_report(run_dir: Path) -> Path:
    path = Path(run_dir) / REPORT
    path.write_text(render_report(Path(run_dir)), encoding="utf-8")
    return path
