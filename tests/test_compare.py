"""``harness compare`` end to end on run directories written by hand: pairing (partial,
none, repeats, errors), flips and McNemar, the baseline, the outputs and the exit codes."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from click.testing import Result

from harness._cli import cli
from harness._compare import CompareRow
from harness._compare import Settings
from harness._compare import compare_rows
from harness._compare import compare_section
from harness._compare import load_columns

FAST = Settings(resamples=1000)


def write_run(run_dir: Path, records: list[dict[str, Any]], backends: list[str]) -> Path:
    """A run directory as `harness run` leaves it, as far as compare reads it."""
    run_dir.mkdir(parents=True)
    lines = []
    for rec in records:
        full = {"backend": backends[0], "task": "qa", "error": None, "scores": {}, **rec}
        lines.append(json.dumps(full) + "\n")
    (run_dir / "samples.jsonl").write_text("".join(lines), encoding="utf-8")
    manifest = {"name": run_dir.name, "manifest": {"backends": [{"type": b} for b in backends]}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return run_dir


def binary(values: list[int], prefix: str = "s", **fields: Any) -> list[dict[str, Any]]:
    return [
        {"sample_id": f"{prefix}{i}", "scores": {"exact_match": float(v)}, **fields}
        for i, v in enumerate(values)
    ]


def rows_of(*run_dirs: Path, settings: Settings = FAST) -> list[CompareRow]:
    return compare_rows(load_columns(run_dirs), settings)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, ["compare", *args, "--bootstrap", "1000"])


# A: right on 0-9 and 20-29; B: wrong on 0 (1 worse), right on 10-18 (9 better), wrong on 19
A_VALUES = [1] * 10 + [0] * 10 + [1] * 10
B_VALUES = [0] + [1] * 9 + [1] * 9 + [0] + [1] * 10


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path]:
    a = write_run(tmp_path / "a", binary(A_VALUES), ["m"])
    b = write_run(tmp_path / "b", binary(B_VALUES), ["m"])
    return a, b


def test_flips_and_mcnemar(runs: tuple[Path, Path]) -> None:
    (row,) = rows_of(*runs)
    assert (row.a, row.b, row.task, row.metric) == ("a/m", "b/m", "qa", "exact_match")
    assert (row.better, row.worse) == (9, 1)
    assert row.p_mcnemar == pytest.approx(0.021484375)
    assert row.diff == pytest.approx(8 / 30) and row.mean_a == pytest.approx(20 / 30)
    assert row.ci_low < row.diff < row.ci_high and row.ci_low > 0
    assert (row.n_paired, row.only_a, row.only_b, row.pairing) == (30, 0, 0, "paired")


def test_text_output(runs: tuple[Path, Path]) -> None:
    result = invoke(*map(str, runs))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "A (baseline): a/m" and "B: b/m" in lines
    header = next(line for line in lines if line.startswith("task"))
    assert header.split() == [
        "task", "metric", "A", "B", "diff", "95%", "CI", "p", "better", "worse", "n", "pairing"
    ]  # fmt: skip
    row = lines[lines.index(header) + 1].split()
    assert row[:5] == ["qa", "exact_match", "0.6667", "0.9333", "+0.2667"]
    assert row[7:] == ["0.0215", "9", "1", "30", "paired"]


def test_missing_samples_are_marked_and_left_out(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", binary([1, 0, 1, 0, 1, 1, 1, 1, 0, 1]), ["m"])
    b_records = binary([1, 1, 1, 1, 1, 0, 0, 0], prefix="s") + binary([1, 1], prefix="extra")
    b_records[5]["error"], b_records[5]["scores"] = "timeout", {}  # s5 errored: not paired
    b = write_run(tmp_path / "b", b_records, ["m"])
    (row,) = rows_of(a, b)
    assert (row.n_paired, row.only_a, row.only_b, row.n_a, row.n_b) == (7, 3, 2, 10, 9)
    assert row.pairing == "paired 7/12 (3 only in A, 2 only in B)"
    # the means are over the paired samples s0-s4, s6, s7 only
    assert row.mean_a == pytest.approx(5 / 7) and row.mean_b == pytest.approx(5 / 7)
    assert (row.better, row.worse) == (2, 2)
    result = invoke(str(a), str(b))
    assert "paired 7/12 (3 only in A, 2 only in B)" in result.output


def test_disjoint_samples_are_compared_unpaired(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", binary([1, 0, 1, 1], prefix="x"), ["m"])
    b = write_run(tmp_path / "b", binary([0, 0, 1, 0, 0], prefix="y"), ["m"])
    (row,) = rows_of(a, b)
    assert row.pairing == "unpaired" and row.n_paired == 0
    assert row.diff == pytest.approx(1 / 5 - 3 / 4)
    assert row.better is None and row.worse is None and row.p_mcnemar != row.p_mcnemar  # NaN
    assert row.ci_low <= row.diff <= row.ci_high
    line = next(line for line in invoke(str(a), str(b)).output.splitlines() if "unpaired" in line)
    assert line.split()[-2:] == ["4+5", "unpaired"]


def test_a_task_only_one_side_ran_has_no_difference(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", binary([1, 0]), ["m"])
    b = write_run(tmp_path / "b", binary([1, 0], task="other"), ["m"])
    rows = rows_of(a, b)
    assert [(r.task, r.pairing) for r in rows] == [
        ("other", "no samples in A"),
        ("qa", "no samples in B"),
    ]
    assert all(r.diff != r.diff for r in rows)  # NaN


def test_repeats_are_averaged_per_sample_before_pairing(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", binary([1, 0, 1, 0]), ["m"])
    b_records = binary([1, 1, 0, 0], repeat=0) + binary([0, 1, 0, 1], repeat=1)
    b_records += [{"sample_id": "s2", "repeat": 2, "error": "timeout", "scores": {}}]
    b = write_run(tmp_path / "b", b_records, ["m"])
    (row,) = rows_of(a, b)
    # per sample: B = 0.5, 1.0, 0.0, 0.5 (the errored repeat adds nothing)
    assert row.n_paired == 4 and row.pairing == "paired"
    assert row.mean_b == pytest.approx(0.5) and row.diff == pytest.approx(0.0)
    assert row.better is None and row.p_mcnemar != row.p_mcnemar  # not 0/1 any more


def test_two_backends_of_one_run_in_manifest_order(tmp_path: Path) -> None:
    records = binary([1, 1, 1], backend="new") + binary([0, 1, 0], backend="base")
    run = write_run(tmp_path / "one", records, ["base", "new"])
    (row,) = rows_of(run)
    assert (row.a, row.b) == ("one/base", "one/new")
    assert (row.better, row.worse, row.diff) == (2, 0, pytest.approx(2 / 3))


def test_every_other_column_against_the_first(tmp_path: Path) -> None:
    a = write_run(tmp_path / "a", binary([1, 0]), ["m"])
    b = write_run(tmp_path / "b", binary([1, 1]), ["m"])
    c = write_run(tmp_path / "c", binary([0, 0]), ["m"])
    rows = rows_of(a, b, c)
    assert [(r.a, r.b, r.diff) for r in rows] == [("a/m", "b/m", 0.5), ("a/m", "c/m", -0.5)]


def test_subtasks_and_metrics(tmp_path: Path) -> None:
    def records(values: list[int]) -> list[dict[str, Any]]:
        return [
            {**r, "subtask": "odd" if i % 2 else "even", "scores": {**r["scores"], "t": 1.0 * i}}
            for i, r in enumerate(binary(values))
        ]

    a = write_run(tmp_path / "a", records([1, 1, 0, 0]), ["m"])
    b = write_run(tmp_path / "b", records([1, 0, 1, 1]), ["m"])
    assert [(r.subtask, r.metric) for r in rows_of(a, b)] == [("", "exact_match"), ("", "t")]
    rows = rows_of(a, b, settings=Settings(1000, 0, ["exact_match"], by_subtask=True))
    assert [(r.subtask, r.diff, r.better, r.worse) for r in rows] == [
        ("", 0.25, 2, 1),
        ("even", 0.5, 1, 0),
        ("odd", 0.0, 1, 1),
    ]
    result = invoke(str(a), str(b), "--by-subtask", "--metric", "exact_match")
    assert result.exit_code == 0 and "subtask" in result.output
    assert not [line for line in result.output.splitlines() if line.split()[2:3] == ["t"]]


def test_csv_and_html_are_written(runs: tuple[Path, Path], tmp_path: Path) -> None:
    out_csv, out_html = tmp_path / "c.csv", tmp_path / "c.html"
    result = invoke(*map(str, runs), "--csv", str(out_csv), "--html", str(out_html))
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert row["better"] == "9" and row["worse"] == "1" and row["pairing"] == "paired"
    assert float(row["p_mcnemar"]) == pytest.approx(0.021484375)
    assert {"ci_low", "ci_high", "n_paired", "only_a", "only_b", "mean_a", "mean_b"} <= set(row)
    page = out_html.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "<svg" in page and "<table>" in page
    assert "a/m" in page and "b/m" in page
    assert "<svg" in compare_section(rows_of(*runs))  # what a report would embed


def test_the_same_seed_gives_the_same_intervals(runs: tuple[Path, Path]) -> None:
    first, again = rows_of(*runs), rows_of(*runs)
    assert (first[0].ci_low, first[0].ci_high) == (again[0].ci_low, again[0].ci_high)
    assert (
        invoke(*map(str, runs), "--seed", "5").output
        == invoke(*map(str, runs), "--seed", "5").output
    )


def test_means_keeps_the_old_table(runs: tuple[Path, Path]) -> None:
    result = invoke(*map(str, runs), "--means")
    assert result.exit_code == 0, result.output
    header, *_, last = result.output.strip().splitlines()
    assert header.split() == ["a/m", "b/m"]
    assert last.split()[-2:] == ["0.6667", "0.9333"]


def test_exit_codes(runs: tuple[Path, Path], tmp_path: Path) -> None:
    one = invoke(str(runs[0]))
    assert one.exit_code == 2 and "one column (a/m)" in one.output
    empty = tmp_path / "empty"
    empty.mkdir()
    not_a_run = invoke(str(runs[0]), str(empty))
    assert not_a_run.exit_code == 1 and "not a run directory" in not_a_run.output
    assert invoke(str(runs[0]), str(tmp_path / "missing")).exit_code == 2
    unknown = invoke(*map(str, runs), "--metric", "nope")
    assert unknown.exit_code == 2 and "nope" in unknown.output and "exact_match" in unknown.output


def test_without_matplotlib_the_page_keeps_its_tables(
    runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    body = compare_section(rows_of(*runs))
    assert "<svg" not in body and "pip install -e .[plots]" in body and "<table>" in body
