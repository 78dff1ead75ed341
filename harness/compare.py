"""Side-by-side comparison of runs: same (task, metric) rows, one column per run and backend."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.report import _part
from harness.results import NO_SCORES, load_results


def compare_table(run_dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Pivot the aggregates of several runs; columns are ``run/backend``.

    Two run directories with the same folder name are told apart by their parent folder.
    """
    paths = [Path(d) for d in run_dirs]
    frames = []
    for label, path in zip(_unique_labels(paths), paths, strict=True):
        frame = load_results([path])
        mode = _modes(path)
        frames.append(frame.assign(column=label + "/" + frame["backend"].astype(str) + mode))
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


def _modes(run_dir: Path) -> str:
    """`` (prompt)``: how tool calls were asked for, so differently prompted runs never share a
    label (scores of prompt and native modes are not comparable as equals)."""
    path = run_dir / "manifest.json"
    if not path.exists():
        return ""
    tasks = json.loads(path.read_text(encoding="utf-8")).get("data", {})
    modes = sorted({info["mode"] for info in tasks.values() if info.get("mode")})
    return f" ({','.join(modes)})" if modes else ""


def _unique_labels(paths: list[Path]) -> list[str]:
    names = [p.resolve().name for p in paths]
    return [
        f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n
        for p, n in zip(paths, names, strict=True)
    ]
