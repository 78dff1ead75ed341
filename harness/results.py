"""Aggregates: ``results.json`` and ``summary.csv`` from ``samples.jsonl``, and the Python API
that loads run directories into pandas DataFrames.

Aggregation streams the sample store back (it never holds the run in memory) and sums with
``math.fsum``, so the numbers are identical whether or not the run was interrupted.
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.store import SAMPLES, iter_records

RESULTS = "results.json"
SUMMARY = "summary.csv"
MANIFEST = "manifest.json"
SUMMARY_COLUMNS = ["backend", "task", "metric", "value", "stderr", "n", "n_errors", "n_samples"]


def _collect(records: Iterable[dict[str, Any]]) -> tuple[dict, dict]:
    """Stream records into compact per-group value arrays (8 bytes a value) and counts."""
    values: dict[tuple[str, str, str], array] = {}
    counts: dict[tuple[str, str], list[int]] = {}
    for rec in records:
        group = (rec["backend"], rec["task"])
        count = counts.setdefault(group, [0, 0])
        count[0] += 1
        count[1] += rec.get("error") is not None
        for metric, value in (rec.get("scores") or {}).items():
            if value is not None:
                values.setdefault((*group, metric), array("d")).append(float(value))
    return values, counts


def _mean_stderr(values: array) -> tuple[float, float]:
    """Exactly rounded (``math.fsum``), hence independent of the order samples finished in."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, float("nan")
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance) / math.sqrt(n)


def aggregate_frame(samples_path: Path) -> pd.DataFrame:
    """One row per (backend, task, metric): mean, standard error, counts.

    Streams ``samples.jsonl`` once; memory grows with 8 bytes per score, not per record.
    """
    values, counts = _collect(iter_records(samples_path))
    rows = []
    for (backend, task, metric), vals in values.items():
        n_samples, n_errors = counts[(backend, task)]
        rows.append((backend, task, metric, *_mean_stderr(vals), len(vals), n_errors, n_samples))
    scored = {(b, t) for b, t, _ in values}
    for (backend, task), (n_samples, n_errors) in counts.items():
        if (backend, task) not in scored:
            rows.append(
                (backend, task, "(no scores)", float("nan"), float("nan"), 0, n_errors, n_samples)
            )
    frame = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    return frame.sort_values(["task", "backend", "metric"], kind="stable", ignore_index=True)


def results_document(frame: pd.DataFrame, context: dict[str, Any]) -> dict[str, Any]:
    """lm-eval-shaped: ``results[task][backend][metric]`` plus configs, versions and config."""
    results: dict[str, Any] = {}
    for row in frame.itertuples(index=False):
        cell = results.setdefault(row.task, {}).setdefault(row.backend, {})
        cell.update(n_samples=int(row.n_samples), n_errors=int(row.n_errors))
        if row.metric != "(no scores)":
            cell[row.metric] = _num(row.value)
            cell[f"{row.metric}_stderr"] = _num(row.stderr)
            cell[f"{row.metric}_n"] = int(row.n)
    return {"results": results, **context}


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 10)


def write_results(run_dir: Path, context: dict[str, Any]) -> dict[str, Any]:
    """Write ``results.json`` and ``summary.csv`` for a run directory; return the document."""
    frame = aggregate_frame(run_dir / SAMPLES)
    document = results_document(frame, context)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    (run_dir / RESULTS).write_text(text + "\n", encoding="utf-8")
    frame.to_csv(run_dir / SUMMARY, index=False, float_format="%.10g")
    return document


# --- the Python API -------------------------------------------------------------------------


def load_results(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Aggregates of one or many run directories as one DataFrame, with a ``run`` column.

    >>> df = load_results(["runs/a", "runs/b"])  # doctest: +SKIP
    >>> df.pivot_table(index=["task", "metric"], columns=["run", "backend"], values="value")
    """
    frames = []
    for run_dir in map(Path, run_dirs):
        frame = (
            pd.read_csv(run_dir / SUMMARY)
            if (run_dir / SUMMARY).exists()
            else (aggregate_frame(run_dir / SAMPLES))
        )
        frames.append(frame.assign(run=run_label(run_dir)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SUMMARY_COLUMNS)


def load_samples(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Every sample record of one or many run directories (scores flattened as ``scores.X``)."""
    frames = []
    for run_dir in map(Path, run_dirs):
        records = list(iter_records(Path(run_dir) / SAMPLES))
        frame = pd.json_normalize(records, max_level=1) if records else pd.DataFrame()
        frames.append(frame.assign(run=run_label(Path(run_dir))))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def run_label(run_dir: Path) -> str:
    return Path(run_dir).resolve().name


def load_document(run_dir: Path, name: str) -> dict[str, Any]:
    path = Path(run_dir) / name
    return json.loads(path.read_text(encoding="utf-8"))
