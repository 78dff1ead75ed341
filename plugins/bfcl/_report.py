"""The BFCL plugin's report section: failed answers counted by BFCL's ``error_type``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

from harness import ReportSection
from harness import RunView

if TYPE_CHECKING:
    import pandas as pd


def error_type_counts(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows (task, error_type), a column per backend: how many answers failed that way."""
    import pandas as pd

    rows = [
        (rec["task"], rec["backend"], str(rec["error_type"]))
        for rec in records
        if rec.get("error_type")
    ]
    table = pd.DataFrame(rows, columns=["task", "backend", "error_type"])
    if table.empty:
        return table
    return table.value_counts().unstack("backend", fill_value=0).sort_index()


def sections(run: RunView) -> list[ReportSection]:
    labelled = [run.entry_ids("task", t) for t in ("bfcl", "apigen")]
    labelled += [run.entry_ids("metric", m) for m in ("bfcl_ast", "apigen_match")]
    if run.manifest.get("manifest") and not any(labelled):  # no part labels error types
        return []
    table = error_type_counts(run.records())
    if table.empty:
        return []
    return [ReportSection("Failures by error type", table.to_html(), order=30)]
