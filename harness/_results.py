"""Aggregates: ``results.json`` and ``summary.csv`` from ``samples.jsonl``, and the Python API
that loads run directories into pandas DataFrames.

Aggregation streams the sample store back (it never holds the run in memory) and sums with
``math.fsum``, so the numbers are identical whether or not the run was interrupted.

Three levels of rows: the whole task (``level == "task"``), each subtask (a sample's
``subtask`` field, e.g. a BFCL category) and groups of subtasks that a task declares in its
provenance (``groups``: unweighted or count-weighted means of members, e.g. BFCL's "live").
Records of a run with repeats (they carry ``repeat``) add ``pass@k``, ``pass^k`` and
``consistency`` rows for 0/1 metrics, from per-sample counts (:mod:`harness._repeats`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from array import array
from collections import Counter
from collections.abc import Iterable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    import pandas as pd

from harness._repeats import RepeatCounts
from harness._repeats import estimates
from harness._store import SAMPLES
from harness._store import iter_records
from harness._store import write_atomic

RESULTS = "results.json"
SUMMARY = "summary.csv"
MANIFEST = "manifest.json"
SUMMARY_COLUMNS = [
    "backend",
    "task",
    "level",
    "subtask",
    "metric",
    "value",
    "stderr",
    "n",
    "n_errors",
    "n_samples",
    "median",
    "p10",
    "p90",
    "n_retries",
]
NAN = float("nan")
NO_SCORES = "(no scores)"

Key = tuple[str, str, str]  # backend, task, subtask ("" for the whole task)
#: How many records carry each value of one label, keyed ``(task, backend, value)``.
LabelCounts = Counter[tuple[str, str, str]]
JSON = dict[str, Any]


class Tally:
    """Aggregates fed one record at a time: compact per-key value arrays (8 bytes a score),
    counts, and the first records that could not be scored. A run feeds it the records it
    resumes from and each record as it is written, so ``samples.jsonl`` is not read back."""

    def __init__(self, keep_failures: int = 50, count_labels: Iterable[str] = ()) -> None:
        self.values: dict[tuple[str, str, str, str], array[float]] = {}
        self.counts: dict[Key, list[int]] = {}
        self.failures: list[JSON] = []
        self.keep_failures = keep_failures
        self.labels: dict[str, LabelCounts] = {label: Counter() for label in count_labels}
        self.repeats = RepeatCounts()  # filled by records that carry ``repeat`` only

    def add(self, rec: JSON) -> None:
        backend, task = rec["backend"], rec["task"]
        error, scores = rec.get("error"), rec.get("scores") or {}
        retries = int(rec.get("retries") or 0)
        self._add((backend, task, ""), error is not None, retries, scores)
        if rec.get("subtask"):
            self._add((backend, task, str(rec["subtask"])), error is not None, retries, scores)
        if (error or rec.get("metric_errors")) and len(self.failures) < self.keep_failures:
            self.failures.append(_failure(rec))
        for label, counts in self.labels.items():
            count_label(counts, rec, label)
        if "repeat" in rec:
            self._add_repeat(rec, scores)

    def _add(self, key: Key, failed: bool, retries: int, scores: JSON) -> None:
        count = self.counts.get(key)
        if count is None:
            count = self.counts[key] = [0, 0, 0]
        count[0] += 1
        count[1] += failed
        count[2] += retries
        # None and NaN are no score (NaN is stored as null, so a resumed run reads None)
        for metric, value in scores.items():
            if value is not None and value == value:
                self._array((*key, metric)).append(float(value))

    def _add_repeat(self, rec: JSON, scores: JSON) -> None:
        """Count one repeat's 0/1 scores per sample, for pass@k, pass^k and consistency."""
        backend, task, sample = rec["backend"], rec["task"], str(rec["sample_id"])
        subtasks = ("", str(rec["subtask"])) if rec.get("subtask") else ("",)
        for subtask in subtasks:
            for metric, value in scores.items():
                self.repeats.add((backend, task, subtask, metric), sample, value)

    def _array(self, key: tuple[str, str, str, str]) -> array[float]:
        found = self.values.get(key)
        if found is None:
            found = self.values[key] = array("d")
        return found

    def add_all(self, records: Iterable[JSON]) -> Tally:
        for rec in records:
            self.add(rec)
        return self

    def rows(self, groups: dict[str, list[JSON]] | None = None) -> list[JSON]:
        """One row per (backend, task, level, subtask, metric), in report order."""
        rows = _base_rows(self.values, self.counts) + _repeat_rows(self.repeats, self.counts)
        rows += _group_rows(rows, groups or {})
        order = {"task": 0, "subtask": 1, "group": 2}
        return sorted(
            rows,
            key=lambda r: (r["task"], r["backend"], order[r["level"]], r["subtask"], r["metric"]),
        )


def count_label(counts: LabelCounts, rec: JSON, label: str) -> None:
    """Count one record's value of ``label`` (text, or each text of a list) under
    ``(task, backend, value)``."""
    value = rec.get(label)
    if not value:
        return
    for item in value if isinstance(value, list) else (value,):
        counts[rec["task"], rec["backend"], str(item)] += 1


def _failure(rec: JSON) -> JSON:
    failures = [f"metric {k!r}: {v}" for k, v in (rec.get("metric_errors") or {}).items()]
    row = {k: rec.get(k) for k in ("backend", "task", "sample_id")}
    return row | {"error": "; ".join([*filter(None, [rec.get("error")]), *failures])}


def _mean_stderr(values: array[float]) -> tuple[float, float]:
    """Exactly rounded (``math.fsum``), hence independent of the order samples finished in."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, float("nan")
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance) / math.sqrt(n)


def _spread(values: array[float]) -> tuple[float, float, float]:
    """Median, 10th and 90th percentiles (nearest-rank) of a metric that is not 0/1 valued:
    latencies and token rates are reported by their distribution, not only their mean."""
    if all(v in (0.0, 1.0) for v in values):
        return NAN, NAN, NAN
    ordered = sorted(values)
    median, p10, p90 = (ordered[max(0, math.ceil(q * len(ordered)) - 1)] for q in (0.5, 0.1, 0.9))
    return median, p10, p90


def _row(key: Key, metric: str, count: list[int], **stats: Any) -> dict[str, Any]:
    backend, task, subtask = key
    level = "subtask" if subtask else "task"
    row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS, NAN)
    row.update(
        backend=backend,
        task=task,
        level=level,
        subtask=subtask,
        metric=metric,
        n=0,
        n_samples=count[0],
        n_errors=count[1],
        n_retries=count[2],
    )
    row.update(stats)
    return row


def _base_rows(
    values: dict[tuple[str, str, str, str], array[float]], counts: dict[Key, list[int]]
) -> list[dict[str, Any]]:
    rows = []
    for (backend, task, subtask, metric), vals in values.items():
        key = (backend, task, subtask)
        mean, stderr = _mean_stderr(vals)
        median, p10, p90 = _spread(vals)
        rows.append(
            _row(
                key,
                metric,
                counts[key],
                value=mean,
                stderr=stderr,
                n=len(vals),
                median=median,
                p10=p10,
                p90=p90,
            )
        )
    scored = {(b, t, s) for b, t, s, _ in values}
    rows += [_row(key, NO_SCORES, count) for key, count in counts.items() if key not in scored]
    return rows


def _repeat_rows(repeats: RepeatCounts, counts: dict[Key, list[int]]) -> list[JSON]:
    """``pass@k:<metric>``, ``pass^k:<metric>`` and ``consistency:<metric>`` rows: each the
    mean over samples of a per-sample estimate (see :mod:`harness._repeats`); ``n`` is how
    many samples it averages, ``n_samples`` how many records (repeats) the key has."""
    rows = []
    for (backend, task, subtask, metric), samples in repeats.samples.items():
        key = (backend, task, subtask)
        for name, values in estimates((n, c) for n, c in samples.values()):
            mean, stderr = _mean_stderr(values)
            rows.append(
                _row(key, f"{name}:{metric}", counts[key], value=mean, stderr=stderr, n=len(values))
            )
    return rows


def _group_rows(rows: list[JSON], groups: dict[str, list[JSON]]) -> list[JSON]:
    """Rows for declared groups: means over member subtasks (or earlier groups) that ran."""
    known = {
        (r["backend"], r["task"], r["subtask"], r["metric"]): r
        for r in rows
        if r["level"] == "subtask"
    }
    out = []
    for task, specs in groups.items():
        for spec in specs:
            wanted = spec.get("metrics")
            pairs = {(k[0], k[3]) for k in known if k[1] == task}
            for backend, metric in sorted(p for p in pairs if not wanted or p[1] in wanted):
                row = _group_row(backend, task, metric, spec, known)
                if row is not None:
                    known[(backend, task, spec["name"], metric)] = row
                    out.append(row)
    return out


def _group_row(
    backend: str, task: str, metric: str, spec: JSON, known: dict[tuple[str, str, str, str], JSON]
) -> JSON | None:
    members = [known.get((backend, task, m, metric)) for m in spec["members"]]
    present = [m for m in members if m is not None and not math.isnan(m["value"])]
    if not present or (spec.get("require_all") and len(present) < len(members)):
        return None
    n = sum(m["n"] for m in present)
    if spec.get("weighting") == "count":
        value = math.fsum(m["value"] * m["n"] for m in present) / n
    else:
        value = math.fsum(m["value"] for m in present) / len(present)
    count = [sum(m[k] for m in present) for k in ("n_samples", "n_errors", "n_retries")]
    row = _row((backend, task, spec["name"]), metric, count, value=value, n=n)
    row["level"] = "group"
    return row


def merge_task_rows(
    rows: list[JSON], backend: str, task: str, own: Iterable[JSON], counts: dict[Key, list[int]]
) -> list[JSON]:
    """``rows`` with a task's own aggregates (``Task.aggregate``) for one backend in place of
    the core's rows of the same level, subtask and metric; the others are added, with the
    sample counts of their key (a group's: its own ``n``)."""
    index = {(r["backend"], r["task"], r["level"], r["subtask"], r["metric"]): r for r in rows}
    for item in own:
        level, subtask = str(item["level"]), str(item.get("subtask") or "")
        n = int(item.get("n") or 0)
        count = counts.get((backend, task, "" if level == "task" else subtask), [n, 0, 0])
        row = _row((backend, task, subtask), str(item["metric"]), count)
        row.update(level=level, value=_float(item.get("value")), n=n)
        row["stderr"] = _float(item.get("stderr"))
        index[(backend, task, level, subtask, row["metric"])] = row
    order = {"task": 0, "subtask": 1, "group": 2}
    return sorted(
        index.values(),
        key=lambda r: (r["task"], r["backend"], order[r["level"]], r["subtask"], r["metric"]),
    )


def _float(value: Any) -> float:
    """A number, or NaN for anything else (lm-eval writes ``"N/A"`` for a missing stderr)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else NAN


def error_count(rows: Sequence[JSON]) -> int:
    """Samples that could not be scored, counted once per (backend, task)."""
    seen: dict[tuple[str, str], int] = {}
    for r in rows:
        if r["level"] == "task":
            seen.setdefault((r["backend"], r["task"]), int(r["n_errors"]))
    return sum(seen.values())


def read_groups(run_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The groups each task declared (kept in ``manifest.json`` under ``data[task].groups``)."""
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8")).get("data", {})
    return {task: info["groups"] for task, info in data.items() if info.get("groups")}


def aggregate_rows(samples_path: Path, groups: dict[str, list[JSON]] | None = None) -> list[JSON]:
    """One row per (backend, task, level, subtask, metric): mean, standard error, counts.
    Streams ``samples.jsonl`` once; memory grows with 8 bytes per score, not per record."""
    return Tally().add_all(iter_records(samples_path)).rows(groups)


def aggregate_run(run_dir: Path) -> list[JSON]:
    """The aggregate rows of a run directory, with the groups its tasks declared."""
    return aggregate_rows(Path(run_dir) / SAMPLES, read_groups(run_dir))


def written_rows(run_dir: Path) -> list[JSON] | None:
    """The rows of the run's ``summary.csv`` when it is newer than ``samples.jsonl`` (it then
    holds what the run computed, tasks' own aggregates included); else None."""
    summary, samples = Path(run_dir) / SUMMARY, Path(run_dir) / SAMPLES
    if not summary.exists() or not samples.exists():
        return None
    if summary.stat().st_mtime_ns < samples.stat().st_mtime_ns:
        return None
    with summary.open(encoding="utf-8", newline="") as handle:
        return [_typed(row) for row in csv.DictReader(handle)]


def _typed(row: dict[str, str]) -> JSON:
    out: JSON = dict(row)
    for column in ("value", "stderr", "median", "p10", "p90"):
        out[column] = float(row[column]) if row[column] else NAN
    for column in ("n", "n_errors", "n_samples", "n_retries"):
        out[column] = int(row[column] or 0)
    return out


def to_frame(rows: Sequence[JSON]) -> Any:
    """Rows as a DataFrame with ``summary.csv``'s columns (pandas is imported only here: a
    run does not need it)."""
    import pandas as pd

    frame = pd.DataFrame(list(rows), columns=SUMMARY_COLUMNS)
    counts = ["n", "n_errors", "n_samples", "n_retries"]
    frame[counts] = frame[counts].astype(int)
    return frame


def results_document(rows: Sequence[JSON], context: dict[str, Any]) -> dict[str, Any]:
    """lm-eval-shaped: ``results[task][backend][metric]``, ``subtasks`` and ``groups`` alike,
    plus configs, versions and config."""
    sections: dict[str, dict[str, Any]] = {"task": {}, "subtask": {}, "group": {}}
    for row in rows:
        table = sections[row["level"]].setdefault(row["task"], {})
        if row["level"] != "task":
            table = table.setdefault(row["subtask"], {})
        cell = table.setdefault(row["backend"], {})
        cell.update(n_samples=int(row["n_samples"]), n_errors=int(row["n_errors"]))
        if row["n_retries"]:
            cell["n_retries"] = int(row["n_retries"])
        metric = row["metric"]
        if metric != NO_SCORES:
            cell[metric] = _num(row["value"])
            cell[f"{metric}_stderr"] = _num(row["stderr"])
            cell[f"{metric}_n"] = int(row["n"])
            for stat in ("median", "p10", "p90"):
                if not math.isnan(row[stat]):
                    cell[f"{metric}_{stat}"] = _num(row[stat])
    return {
        "results": sections["task"],
        "subtasks": sections["subtask"],
        "groups": sections["group"],
        **context,
    }


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 10)


def summary_csv(rows: Sequence[JSON]) -> str:
    """``summary.csv``: floats as ``%.10g``, a missing value as an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SUMMARY_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in SUMMARY_COLUMNS])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.10g}"
    return value


def write_results(
    run_dir: Path, context: dict[str, Any], rows: Sequence[JSON] | None = None
) -> dict[str, Any]:
    """Write ``results.json`` and ``summary.csv`` for a run directory; return the document.
    ``rows`` are the run's aggregates when it has them; else ``samples.jsonl`` is read."""
    rows = aggregate_run(run_dir) if rows is None else rows
    document = results_document(rows, context)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)
    write_atomic(run_dir / RESULTS, text + "\n")
    write_atomic(run_dir / SUMMARY, summary_csv(rows))
    return document


# --- the Python API -------------------------------------------------------------------------


def load_results(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Aggregates of one or many run directories as one DataFrame, with a ``run`` column.

    >>> df = load_results(["runs/a", "runs/b"])  # doctest: +SKIP
    >>> df.pivot_table(index=["task", "metric"], columns=["run", "backend"], values="value")
    """
    import pandas as pd

    frames = []
    for run_dir in map(Path, run_dirs):
        if (run_dir / SUMMARY).exists():
            frame = pd.read_csv(run_dir / SUMMARY, dtype={"subtask": str})
            frame["subtask"] = frame["subtask"].fillna("")
        else:
            frame = to_frame(aggregate_run(run_dir))
        frames.append(frame.assign(run=run_label(run_dir)))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SUMMARY_COLUMNS)


def load_samples(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Every sample record of one or many run directories (scores flattened as ``scores.X``)."""
    import pandas as pd

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
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


class RunView:
    """A run directory, read-only, as ``report_sections`` hooks see it: ``manifest`` (the
    content of ``manifest.json``; the manifest as written is ``manifest["manifest"]``), the
    aggregates (``rows``: one dict per backend, task, level, subtask and metric, as in
    ``summary.csv``; ``aggregates``: the same as a pandas DataFrame, built on first use) and
    the sample records, streamed: dicts whose ``task`` and ``backend`` are the entries' ids
    (see :meth:`entry_ids`)."""

    def __init__(
        self,
        run_dir: Path,
        manifest: dict[str, Any],
        rows: Sequence[JSON],
        failures: Sequence[JSON] = (),
        labels: Mapping[str, LabelCounts] | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.manifest = manifest
        self.rows = list(rows)
        self.failures = list(failures)  # the first records that could not be scored
        self._labels = dict(labels or {})
        self._frame: pd.DataFrame | None = None

    @classmethod
    def open(cls, run_dir: str | Path) -> RunView:
        """Read a run directory (``samples.jsonl`` once)."""
        run_dir = Path(run_dir)
        tally = Tally().add_all(iter_records(run_dir / SAMPLES))
        rows = written_rows(run_dir) or tally.rows(read_groups(run_dir))
        return cls(run_dir, cls.read_manifest(run_dir), rows, tally.failures)

    @property
    def aggregates(self) -> pd.DataFrame:
        """``rows`` as a DataFrame with ``summary.csv``'s columns."""
        if self._frame is None:
            self._frame = to_frame(self.rows)
        return self._frame

    @staticmethod
    def read_manifest(run_dir: Path) -> dict[str, Any]:
        path = Path(run_dir) / MANIFEST
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def entry_ids(self, kind: str, plugin: str) -> set[str]:
        """The ids of the manifest's entries of one kind made by one plugin (type): a plugin's
        report section picks its own records with ``record["task"] in run.entry_ids("task",
        "my_task")``, whatever ids the user gave its entries."""
        section = {"backend": "backends", "task": "tasks", "metric": "metrics"}[kind]
        entries = self.manifest.get("manifest", {}).get(section) or []
        return {str(e.get("id", e["type"])) for e in entries if e.get("type") == plugin}

    def label_counts(self, label: str) -> LabelCounts:
        """How many records carry each value of ``label``, keyed ``(task, backend, value)`` (a
        list value counts each item). Counted while the run played when a metric declared
        the label in ``counted_labels``; otherwise read from ``samples.jsonl`` once."""
        if label not in self._labels:
            counts: LabelCounts = Counter()
            for rec in self.records():
                count_label(counts, rec, label)
            self._labels[label] = counts
        return self._labels[label]

    def records(self) -> Iterator[dict[str, Any]]:
        """Every record of ``samples.jsonl``, one at a time (a run can be large)."""
        return iter_records(self.run_dir / SAMPLES)
