"""The SpecTool plugin's report sections: the error profile (share of samples showing each
pattern, per task and backend, as a shaded table) and the failed samples with their evidence."""

from __future__ import annotations

import html
from collections.abc import Iterable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

from harness import ReportSection
from harness import RunView
from harness import figure_html

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


def heatmap_figure(table: pd.DataFrame) -> str:
    """The error profile as a heatmap image (patterns across, task / backend down, each
    cell's rate written in it); empty without matplotlib (the shaded table says the same)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ""
    patterns = sorted({pattern for _, pattern in table.index})
    tasks = list(dict.fromkeys(task for task, _ in table.index))
    rows = [(task, backend) for task in tasks for backend in table.columns]
    values = [[float(table[b].get((t, p), 0.0)) for p in patterns] for t, b in rows]
    fig, ax = plt.subplots(figsize=(1.6 + 0.8 * len(patterns), 1.0 + 0.4 * len(rows)))
    image = ax.imshow(values, cmap="Reds", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(patterns)), patterns)
    ax.set_yticks(range(len(rows)), [f"{t} / {b}" for t, b in rows])
    for i, line in enumerate(values):
        for j, value in enumerate(line):
            colour = "white" if value > 0.6 else "black"
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(image, ax=ax, fraction=0.04, label="share of samples")
    ax.set_title("SpecTool error profile")
    alt = "Heatmap of the share of samples showing each SpecTool pattern, per task and backend"
    return figure_html(fig, alt, "Share of samples showing each pattern", id="fig-heatmap")


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
    parts = [run.entry_ids("task", t) for t in ("spectool", "agent", "rpo")]
    parts += [run.entry_ids("metric", m) for m in ("spectool", "spectool-compat")]
    if run.manifest.get("manifest") and not any(parts):  # no part finds patterns: skip reading
        return []
    out = []
    examples_seen: list[dict[str, Any]] = []
    rates = pattern_rates(_keeping(run.records(), examples_seen))  # one pass for both
    if not rates.empty:
        note = "<p>Share of samples showing each SpecTool pattern (a sample can show several).</p>"
        body = note + heatmap_figure(rates) + heatmap(rates)
        out.append(ReportSection("Error profile (SpecTool patterns)", body, 10))
    examples = pattern_examples(examples_seen)
    if not examples.empty:
        title = "Failed samples: patterns and evidence"
        out.append(ReportSection(title, examples.to_html(index=False), 20))
    return out


def _keeping(
    records: Iterable[dict[str, Any]], kept: list[dict[str, Any]], most: int = 60
) -> Iterator[dict[str, Any]]:
    """Pass the records on, keeping the first ``most`` that show a pattern (the examples)."""
    for record in records:
        if record.get("patterns") and len(kept) < most:
            kept.append(record)
        yield record
