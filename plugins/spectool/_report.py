"""The SpecTool plugin's report sections: the error profile (share of samples showing each
pattern, per task and backend, as a shaded table) and the failed samples with their evidence."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import TYPE_CHECKING
from typing import Any

from harness import ReportSection
from harness import RunView

if TYPE_CHECKING:
    import pandas as pd


def pattern_rates(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows (task, pattern), a column per backend: the share of samples carrying a
    ``patterns`` field that show the pattern (a sample can show several)."""
    import pandas as pd

    patterns: list[tuple[str, str, str]] = []
    carriers: dict[tuple[str, str], int] = {}
    for rec in records:
        if isinstance(rec.get("patterns"), list):
            key = (rec["task"], rec["backend"])
            carriers[key] = carriers.get(key, 0) + 1
            patterns += [(*key, str(code)) for code in rec["patterns"]]
    rates = pd.DataFrame(patterns, columns=["task", "backend", "pattern"])
    if rates.empty:
        return rates
    counts = rates.value_counts().rename("n").reset_index()
    counts["rate"] = [
        n / carriers[(t, b)]
        for t, b, n in zip(counts["task"], counts["backend"], counts["n"], strict=True)
    ]
    return counts.pivot_table(
        index=["task", "pattern"], columns="backend", values="rate", fill_value=0.0
    )


def heatmap(table: pd.DataFrame) -> str:
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


def pattern_examples(records: Iterable[dict[str, Any]], limit: int = 60) -> pd.DataFrame:
    """The first failed samples with their patterns and the evidence: which call, which argument."""
    import pandas as pd

    rows = []
    for rec in records:
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


def sections(run: RunView) -> list[ReportSection]:
    parts = [run.entry_ids("task", "spectool")]
    parts += [run.entry_ids("metric", m) for m in ("spectool", "spectool-compat")]
    if run.manifest.get("manifest") and not any(parts):  # no part finds patterns: skip reading
        return []
    out = []
    rates = pattern_rates(run.records())
    if not rates.empty:
        note = "<p>Share of samples showing each SpecTool pattern (a sample can show several).</p>"
        out.append(ReportSection("Error profile (SpecTool patterns)", note + heatmap(rates), 10))
    examples = pattern_examples(run.records())
    if not examples.empty:
        title = "Failed samples: patterns and evidence"
        out.append(ReportSection(title, examples.to_html(index=False), 20))
    return out
