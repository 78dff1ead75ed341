"""The BFCL plugin's report section: failed answers counted by BFCL's ``error_type``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from harness import ReportSection
from harness import RunView
from harness import Table


def error_type_counts(records: Iterable[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """How many answers failed each way, keyed (task, backend, error_type), as
    :meth:`RunView.label_counts` counts them (used where there is no run view)."""
    return Counter(
        (rec["task"], rec["backend"], str(rec["error_type"]))
        for rec in records
        if rec.get("error_type")
    )


def error_type_table(counts: Counter[tuple[str, str, str]]) -> Table:
    """Rows (task, error_type) in order, a column per backend (in the order first seen)."""
    backends = list(dict.fromkeys(backend for _, backend, _ in counts))
    kinds = sorted({(task, kind) for task, _, kind in counts})
    rows = [[task, kind, *(counts[task, b, kind] for b in backends)] for task, kind in kinds]
    return Table(["task", "error_type", *backends], rows)


def sections(run: RunView) -> list[ReportSection]:
    labelled = [run.entry_ids("task", t) for t in ("bfcl", "apigen")]
    labelled += [
        run.entry_ids("metric", m) for m in ("bfcl_ast", "apigen_match", "bfcl_multi_turn")
    ]
    if run.manifest.get("manifest") and not any(labelled):  # no part labels error types
        return []
    counts = run.label_counts("error_type")
    if not counts:
        return []
    return [ReportSection("Failures by error type", error_type_table(counts).to_html(), order=30)]
