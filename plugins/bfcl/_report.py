"""The BFCL plugin's report section: failed answers counted by BFCL's ``error_type``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from harness import ReportSection
from harness import RunView


def error_type_counts(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows (task, error_type), a column per backend: how many answers failed that way."""
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
    table = error_type_counts(run.records())
    if table.empty:
        return []
    return [ReportSection("Failures by error type", table.to_html(), order=30)]
