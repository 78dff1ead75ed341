"""Aggregates: ``results.json`` and ``summary.csv`` from ``samples.jsonl``, and the Python API
that loads run directories into pandas DataFrames.

Aggregation reads the sample store back (it never needs the run in memory) and sorts by
sample key first, so the numbers are identical whether or not the run was interrupted.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from harness.store import SAMPLES, iter_records

RESULTS = "results.json"
SUMMARY = "summary.csv"
MANIFEST = "manifest.json"
SUMMARY_COLUMNS = ["backend", "task", "metric", "value", "stderr", "n", "n_errors", "n_samples"]


def _score_rows(records: Iterable[dict[str, Any]]) -> tuple[list[tuple], list[tuple]]:
    """Flatten records to (backend, task, sample_id, metric, value) and per-sample status rows."""
    scores, status = [], []
    for rec in records:
        key = (rec["backend"], rec["task"], str(rec["sample_id"]))
        status.append((*key, rec.get("error") is not None))
        for metric, value in (rec.get("scores") or {}).items():
            if value is not None:
                scores.append((*key, metric, float(value)))
    return scores, status


def aggregate_frame(samples_path: Path) -> pd.DataFrame:
    """One row per (backend, task, metric): mean, standard error, counts."""
    scores, status = _score_rows(iter_records(samples_path))
    status_df = pd.DataFrame(status, columns=["backend", "task", "sample_id", "is_error"])
    counts = status_df.groupby(["backend", "task"], sort=True).agg(
        n_samples=("sample_id", "size"), n_errors=("is_error", "sum")
    )
    df = pd.DataFrame(scores, columns=["backend", "task", "sample_id", "metric", "value"])
    df = df.sort_values(["backend", "task", "metric", "sample_id"], kind="stable")
    agg = df.groupby(["backend", "task", "metric"], sort=True)["value"].agg(
        value="mean", stderr=_stderr, n="size"
    )
    agg = agg.reset_index().merge(counts.reset_index(), on=["backend", "task"], how="outer")
    agg["metric"] = agg["metric"].fillna("(no scores)")
    agg[["n", "n_errors", "n_samples"]] = agg[["n", "n_errors", "n_samples"]].fillna(0).astype(int)
    return agg[SUMMARY_COLUMNS].sort_values(["task", "backend", "metric"], kind="stable")


def _stderr(values: pd.Series) -> float:
    n = len(values)
    return float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")


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
        frame = pd.read_csv(run_dir / SUMMARY) if (run_dir / SUMMARY).exists() else (
            aggregate_frame(run_dir / SAMPLES)
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
