"""report.html: scores, measurements, and why answers failed (error types, SpecTool profile)."""

from __future__ import annotations

import json
from pathlib import Path

from harness_plugins.bfcl._report import error_type_counts
from harness_plugins.bfcl._report import error_type_table
from harness_plugins.spectool._report import pattern_rates

from harness import RunView
from harness._report import render_report
from harness._store import iter_records


def write_records(run_dir: Path) -> None:
    rows = []
    for i in range(4):
        rows.append(
            {
                "backend": "m1",
                "task": "bfcl",
                "sample_id": str(i),
                "error": None,
                "scores": {"accuracy": float(i == 0), "ttft_s": 0.1 * (i + 1)},
                "error_type": "" if i == 0 else "value_error:string",
                "patterns": [] if i == 0 else ["IAV"] + (["RAC"] if i == 3 else []),
                "pattern_evidence": [
                    {
                        "pattern": "IAV",
                        "call_index": 0,
                        "function": "f",
                        "argument": "city",
                        "detail": "wrong value",
                    }
                ],
            }
        )
        rows.append(
            {
                "backend": "m2",
                "task": "bfcl",
                "sample_id": str(i),
                "error": None,
                "scores": {"accuracy": 0.0},
                "error_type": "ast_decoder:decoder_failed",
                "patterns": ["IFE"],
            }
        )
    run_dir.mkdir(exist_ok=True)
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_label_counts_and_profile(tmp_path: Path) -> None:
    write_records(tmp_path)
    types = error_type_counts(iter_records(tmp_path / "samples.jsonl"))
    rates = pattern_rates(iter_records(tmp_path / "samples.jsonl"))
    assert types["bfcl", "m1", "value_error:string"] == 3
    assert types["bfcl", "m2", "ast_decoder:decoder_failed"] == 4
    assert RunView.open(tmp_path).label_counts("error_type") == types
    table = error_type_table(types)
    assert table.columns[:2] == ["task", "error_type"]
    cells = {
        (r[1], backend): n for r in table.rows for backend, n in zip(table.columns, r, strict=True)
    }
    assert cells["ast_decoder:decoder_failed", "m2"] == 4
    assert cells["ast_decoder:decoder_failed", "m1"] == 0
    assert rates.loc[("bfcl", "IAV"), "m1"] == 0.75
    assert rates.loc[("bfcl", "RAC"), "m1"] == 0.25
    assert rates.loc[("bfcl", "IFE"), "m2"] == 1.0


def test_report_has_every_section(tmp_path: Path) -> None:
    write_records(tmp_path)
    page = render_report(tmp_path)
    for heading in (
        "Summary",
        "Figures",
        "Tables",
        "Samples",
        "Error profile (SpecTool patterns)",
        "Failures by error type",
    ):
        assert f"<h2>{heading}</h2>" in page, heading
    for heading in ("Scores (means)", "Measurements (mean, median, p10, p90)"):
        assert f"<h3>{heading}</h3>" in page, heading
    assert "<summary>All aggregates" in page
    assert "rgba(200,40,40,0.75)" in page  # the IAV cell of m1 is shaded by its rate
    assert "<h2>Failed samples: patterns and evidence</h2>" in page
    assert "IAV: call 0 f city (wrong value)" in page


def test_every_table_shows_the_mean_of_metrics_that_are_not_0_or_1(tmp_path: Path) -> None:
    from harness._report import distribution_table
    from harness._report import score_table

    write_records(tmp_path)
    rows = RunView.open(tmp_path).rows
    scores = {(r[2], r[3]) for r in score_table(rows).rows if r[1] == "(all)"}
    assert ("ttft_s", 0.25) in {(metric, round(v, 4)) for metric, v in scores}
    spread = distribution_table(rows)
    assert spread.columns[3] == "mean" and spread.rows[0][3] == 0.25
    page = render_report(tmp_path)
    tables = page.split("<h3>Scores (means)</h3>", 1)[1].split("</table>", 1)[0]
    assert "<td>ttft_s</td><td>0.2500</td>" in tables
