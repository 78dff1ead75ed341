"""The sample store and the aggregates, in process: a corrupt record anywhere stops the read
with its line named (never skipped: aggregates would quietly lose samples), the writer's
flush and sync policy, and the exact numbers ``results.json`` and ``summary.csv`` carry.

Written against the survivors of a mutation audit (``scripts/mutation.py``, issue 20).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from harness._errors import HarnessError
from harness._errors import RunDirError
from harness._results import NO_SCORES
from harness._results import SUMMARY_COLUMNS
from harness._results import RunView
from harness._results import Tally
from harness._results import _float
from harness._results import _mean_stderr
from harness._results import _spread
from harness._results import aggregate_rows
from harness._results import error_count
from harness._results import load_document
from harness._results import load_results
from harness._results import load_samples
from harness._results import merge_task_rows
from harness._results import read_groups
from harness._results import results_document
from harness._results import summary_csv
from harness._results import to_frame
from harness._results import write_results
from harness._results import written_rows
from harness._store import RunDirLock
from harness._store import SampleWriter
from harness._store import drop_errors
from harness._store import finished_keys
from harness._store import iter_records
from harness._store import record_key
from harness._store import repair_tail
from harness._store import write_atomic


def _line(**fields: Any) -> bytes:
    return json.dumps({"backend": "b", "task": "t", "sample_id": "1"} | fields).encode() + b"\n"


# ---------------------------------------------------------------------------- reading
@pytest.mark.parametrize(
    ("middle", "problem"),
    [
        (
            b"{not json}\n",
            "line 2 is not valid JSON (Expecting property name enclosed in double quotes);",
        ),
        (b'{"backend": \n', "line 2 is not valid JSON"),
        (b'["backend", "task"]\n', "line 2 is JSON but not a sample record"),
        (b'{"backend": "b", "task": "t"}\n', "line 2 is JSON but not a sample record"),
        (b'{"task": "t", "sample_id": "2"}\n', "line 2 is JSON but not a sample record"),
        (b'{"backend": "b", "sample_id": "2"}\n', "line 2 is JSON but not a sample record"),
        (_line(repeat="0"), "line 2 is JSON but not a sample record"),
        (b"[" * 100_000 + b"\n", "line 2 is not valid JSON"),
    ],
)
def test_a_corrupt_middle_line_stops_the_read_naming_it(
    tmp_path: Path, middle: bytes, problem: str
) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_bytes(_line(sample_id="1") + middle + _line(sample_id="3"))
    records = iter_records(path)
    assert next(records)["sample_id"] == "1"
    with pytest.raises(RunDirError) as raised:
        next(records)
    message = str(raised.value)
    assert message.startswith(f"{path}: {problem}"), message
    assert message.endswith(
        "the file was edited or is corrupt: delete that line (its sample is played again) or "
        "choose another --out"
    )
    with pytest.raises(RunDirError):
        finished_keys(path)
    with pytest.raises(RunDirError):
        aggregate_rows(path)
    before = path.read_bytes()
    with pytest.raises(RunDirError):
        drop_errors(path)
    assert path.read_bytes() == before


def test_records_keys_and_the_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    assert list(iter_records(path)) == [] and finished_keys(path) == set()
    path.write_bytes(_line(sample_id=7) + _line(sample_id="7", repeat=2) + b'{"backend": "b"')
    assert [r["sample_id"] for r in iter_records(path)] == [7, "7"]
    assert finished_keys(path) == {("b", "t", "7"), ("b", "t", "7", 2)}
    assert record_key({"backend": "b", "task": "t", "sample_id": 1, "repeat": 0}) == (
        "b", "t", "1", 0,
    )  # fmt: skip


def test_repair_tail_scans_back_over_a_long_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    head = _line(sample_id="1") + _line(sample_id="2")
    path.write_bytes(head + b"x" * 200_000)
    repair_tail(path)
    assert path.read_bytes() == head
    repair_tail(path)
    assert path.read_bytes() == head
    path.write_bytes(b"\n" + b"y" * 70_000)
    repair_tail(path)
    assert path.read_bytes() == b"\n"
    path.write_bytes(b"\n")
    repair_tail(path)
    assert path.read_bytes() == b"\n"
    repair_tail(tmp_path / "absent.jsonl")
    assert not (tmp_path / "absent.jsonl").exists()


def test_drop_errors_keeps_good_lines_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    good = [_line(sample_id="1"), _line(sample_id="4", error=None, metric_errors={})]
    bad = [_line(sample_id="2", error="boom"), _line(sample_id="3", metric_errors={"m": "x"})]
    path.write_bytes(good[0] + bad[0] + bad[1] + good[1] + b'{"torn')
    assert drop_errors(path) == 2
    assert path.read_bytes() == good[0] + good[1]
    assert drop_errors(path) == 0
    assert drop_errors(tmp_path / "absent.jsonl") == 0
    assert not (tmp_path / "absent.jsonl").exists()


def test_write_atomic_replaces_whole_files_and_names_a_failure(
    tmp_path: Path, syncs: list[int]
) -> None:
    path = tmp_path / "f.txt"
    write_atomic(path, "caf\udce9\n")
    assert path.read_bytes() == b"caf\\udce9\n" and syncs == []
    write_atomic(path, iter([b"a", b"bc"]), durable=True)
    assert path.read_bytes() == b"abc" and syncs == [3]  # synced once, after the whole write
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    (tmp_path / "samples.jsonl").write_bytes(_line() + _line(sample_id="2", error="x"))
    assert drop_errors(tmp_path / "samples.jsonl") == 1 and syncs == [3, len(_line())]
    folder = tmp_path / "folder"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(HarnessError, match="cannot write"):
        write_atomic(folder, "x")  # the temporary file is written, the rename fails
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.txt", "folder", "samples.jsonl"]
    missing = tmp_path / "no-such-folder" / "f.txt"
    with pytest.raises(HarnessError) as raised:
        write_atomic(missing, "x")
    assert str(raised.value) == (
        f"{missing}: cannot write (No such file or directory); make room or fix the "
        "permissions, then rerun the same command: finished samples are kept and the run resumes"
    )


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _refused(run_dir: Path) -> str:
    before = _open_fds()
    with pytest.raises(RunDirError) as raised:
        RunDirLock(run_dir).__enter__()
    assert _open_fds() == before  # the refused descriptor is closed
    return str(raised.value)


def test_run_dir_lock_refuses_a_second_writer_and_names_it(tmp_path: Path) -> None:
    lock_file = tmp_path / ".harness.lock"
    lock_file.write_text("12345678901234\n")  # a longer pid from an earlier run
    with RunDirLock(tmp_path) as lock:
        assert lock_file.read_text() == f"{os.getpid()}\n"
        message = _refused(tmp_path)
        assert message.startswith(f"{tmp_path}: another harness run (pid {os.getpid()}) is")
        lock_file.write_bytes(b"")
        assert "(pid unknown)" in _refused(tmp_path)  # the holder has not written its pid yet
        lock_file.write_bytes(b"\xff42\n")
        assert "(pid \ufffd42)" in _refused(tmp_path)
        assert lock._fd is not None
    assert lock._fd is None
    with RunDirLock(tmp_path):
        pass
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with RunDirLock(fresh):
        assert (fresh / ".harness.lock").stat().st_mode & 0o777 == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------- writing
class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _on_disk(path: Path) -> int:
    return path.read_bytes().count(b"\n")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    fake = _Clock()
    monkeypatch.setattr("harness._store.time.monotonic", fake)
    return fake


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each fsync, as the file's size when it ran: what was handed over before it."""
    calls: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        "harness._store.os.fsync", lambda fd: calls.append(os.fstat(fd).st_size) or real_fsync(fd)
    )
    return calls


def _write(writer: SampleWriter, *ids: int) -> None:
    for sample in ids:
        writer.write({"backend": "b", "task": "t", "sample_id": str(sample)})


def test_writer_hands_over_by_count_and_delay_and_syncs_at_most_once_a_second(
    tmp_path: Path, clock: _Clock, syncs: list[int]
) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_bytes(_line(sample_id="0") + b'{"torn')
    writer = SampleWriter(path, flush_every=3, max_delay_s=1.0)
    assert path.read_bytes() == _line(sample_id="0")  # the torn line is cut first
    clock.now = 0.1
    _write(writer, 1, 2)
    assert _on_disk(path) == 1  # two pending after 0.1 s: still buffered
    _write(writer, 3)
    assert _on_disk(path) == 4 and syncs == []  # the third hands them over, no sync yet
    _write(writer, 4, 5)
    assert _on_disk(path) == 4  # the count starts again from 0
    clock.now = 0.25
    _write(writer, 6)
    assert _on_disk(path) == 7  # the third again
    clock.now = 0.4
    _write(writer, 7)
    assert _on_disk(path) == 7  # 0.15 s since the hand-over
    clock.now = 0.5
    _write(writer, 8)
    assert _on_disk(path) == 9 and syncs == []  # 0.25 s since the hand-over
    clock.now = 1.0
    _write(writer, 9)
    assert _on_disk(path) == 10 and syncs == [path.stat().st_size]  # 1 s since the last sync
    _write(writer, 10, 11)
    assert writer.written == 11 and _on_disk(path) == 10  # after a sync, the count from 0
    writer.close()
    assert _on_disk(path) == 12 and syncs[1] == path.stat().st_size  # handed over, then synced
    assert writer._handle.closed
    writer.close()
    assert len(syncs) == 2


def test_writer_defaults_64_records_or_0_2_s_and_a_sync_a_second(
    tmp_path: Path, clock: _Clock, syncs: list[int]
) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as writer:
        _write(writer, *range(63))
        assert _on_disk(path) == 0
        _write(writer, 63)
        assert _on_disk(path) == 64 and syncs == []
    assert len(syncs) == 1 and writer._handle.closed
    other = tmp_path / "other.jsonl"
    with SampleWriter(other) as writer:
        _write(writer, 0)
        clock.now = 0.2
        _write(writer, 1)
        assert _on_disk(other) == 2 and syncs == [syncs[0]]
        clock.now = 0.4
        _write(writer, 2)
        clock.now = 1.0
        _write(writer, 3)
        assert _on_disk(other) == 4 and len(syncs) == 2


def test_a_failed_write_is_one_error_and_the_writer_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "samples.jsonl"
    writer = SampleWriter(path, flush_every=1)

    def full(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer._handle, "flush", full)
    with pytest.raises(HarnessError, match=r"cannot write \(No space left on device\)"):
        writer.write({"backend": "b", "task": "t", "sample_id": "1"})
    assert writer.failed
    writer.close()  # already reported: closes quietly
    assert writer._handle.closed
    with SampleWriter(path) as again:
        monkeypatch.setattr(again._handle, "write", full)
        with pytest.raises(HarnessError, match="No space left"):
            again.write({"backend": "b", "task": "t", "sample_id": "2"})
        assert again.failed and again.written == 0


# ---------------------------------------------------------------------------- aggregates
def test_mean_stderr_and_spread_are_exact() -> None:
    from array import array

    mean, stderr = _mean_stderr(array("d", [1.0, 2.0, 3.0, 4.0]))
    assert mean == 2.5 and stderr == pytest.approx(math.sqrt(5 / 3) / 2)
    one = _mean_stderr(array("d", [3.0]))
    assert one[0] == 3.0 and math.isnan(one[1])
    assert _spread(array("d", [float(v) for v in range(10, 0, -1)])) == (5.0, 1.0, 9.0)
    assert _spread(array("d", [7.0])) == (7.0, 7.0, 7.0)
    assert all(math.isnan(v) for v in _spread(array("d", [0.0, 1.0, 1.0])))


def _rec(sample: str, value: Any, **fields: Any) -> dict[str, Any]:
    return {"backend": "b", "task": "t", "sample_id": sample, "scores": {"m": value}} | fields


def test_tally_counts_errors_retries_failures_labels_and_skips_missing_scores() -> None:
    tally = Tally(keep_failures=2, count_labels=["patterns"])
    tally.add(_rec("1", 1.0, subtask="s1", retries=2, patterns=["IAC", "IAV"]))
    tally.add(_rec("2", None, subtask="s1", error="boom", patterns="IAC"))
    tally.add(_rec("3", float("nan"), metric_errors={"m": "bad"}))
    tally.add(_rec("4", 0.0, error="again"))
    assert tally.counts == {("b", "t", ""): [4, 2, 2], ("b", "t", "s1"): [2, 1, 2]}
    assert list(tally.values[("b", "t", "", "m")]) == [1.0, 0.0]
    assert tally.failures == [
        {"backend": "b", "task": "t", "sample_id": "2", "error": "boom"},
        {"backend": "b", "task": "t", "sample_id": "3", "error": "metric 'm': bad"},
    ]
    assert dict(tally.labels["patterns"]) == {("t", "b", "IAC"): 2, ("t", "b", "IAV"): 1}
    rows = {(r["level"], r["subtask"], r["metric"]): r for r in tally.rows()}
    task = rows[("task", "", "m")]
    assert (task["value"], task["n"], task["n_samples"], task["n_errors"], task["n_retries"]) == (
        0.5, 2, 4, 2, 2,
    )  # fmt: skip
    assert rows[("subtask", "s1", "m")]["n"] == 1
    assert error_count(tally.rows()) == 2


def test_a_key_without_scores_gets_a_no_scores_row() -> None:
    rows = Tally().add_all([_rec("1", None, error="x")]).rows()
    assert [(r["metric"], r["n_samples"], r["n_errors"], r["n"]) for r in rows] == [
        (NO_SCORES, 1, 1, 0)
    ]
    assert math.isnan(rows[0]["value"])
    assert results_document(rows, {})["results"] == {"t": {"b": {"n_samples": 1, "n_errors": 1}}}


def test_groups_weighted_unweighted_nested_and_required() -> None:
    records = [
        _rec("1", 1.0, subtask="a"),
        _rec("2", 0.0, subtask="b"),
        _rec("3", 1.0, subtask="b"),
    ]
    groups = {
        "t": [
            {"name": "mean", "members": ["a", "b"]},
            {"name": "count", "members": ["a", "b"], "weighting": "count"},
            {"name": "need", "members": ["a", "c"], "require_all": True},
            {"name": "some", "members": ["a", "c"]},
            {"name": "outer", "members": ["mean", "some"]},
            {"name": "other", "members": ["a"], "metrics": ["z"]},
        ]
    }
    rows = Tally().add_all(records).rows(groups)
    found = {r["subtask"]: r for r in rows if r["level"] == "group"}
    assert set(found) == {"mean", "count", "some", "outer"}
    # a: 1.0 over 1 sample, b: 0.5 over 2
    assert found["mean"]["value"] == 0.75 and found["count"]["value"] == pytest.approx(2 / 3)
    assert found["some"]["value"] == 1.0 and found["outer"]["value"] == 0.875
    assert (found["count"]["n"], found["count"]["n_samples"]) == (3, 3)
    assert [(r["level"], r["subtask"]) for r in rows] == [
        ("task", ""), ("subtask", "a"), ("subtask", "b"),
        ("group", "count"), ("group", "mean"), ("group", "outer"), ("group", "some"),
    ]  # fmt: skip


def test_merge_task_rows_replaces_and_adds() -> None:
    records = [_rec("1", 1.0, subtask="s"), _rec("2", 0.0), _rec("3", 1.0, backend="a")]
    records.append(_rec("4", 0.0, task="r"))
    rows = Tally().add_all(records).rows()
    counts = {("b", "t", ""): [2, 1, 0], ("b", "t", "s"): [1, 0, 0]}
    own = [
        {"level": "task", "subtask": "named", "metric": "m", "value": 0.9, "stderr": 0.05, "n": 7},
        {"level": "subtask", "subtask": "s", "metric": "m", "value": 0.2, "stderr": "N/A"},
        {"level": "group", "subtask": "g", "metric": "m", "value": True, "n": 5},
        {"level": "subtask", "subtask": "a2", "metric": "m", "value": 0.5, "n": 1},
    ]
    merged = merge_task_rows(rows[::-1], "b", "t", own, counts)  # sorted whatever the input
    assert [(r["task"], r["backend"], r["level"], r["subtask"]) for r in merged] == [
        ("r", "b", "task", ""), ("t", "a", "task", ""), ("t", "b", "task", ""),
        ("t", "b", "task", "named"), ("t", "b", "subtask", "a2"), ("t", "b", "subtask", "s"),
        ("t", "b", "group", "g"),
    ]  # fmt: skip
    named, sub, group = merged[3], merged[5], merged[6]
    assert (named["value"], named["stderr"], named["n"]) == (0.9, 0.05, 7)
    assert (named["n_samples"], named["n_errors"]) == (2, 1)  # the task's counts
    assert (sub["value"], sub["n"], sub["n_samples"]) == (0.2, 0, 1) and math.isnan(sub["stderr"])
    assert math.isnan(group["value"]) and (group["n_samples"], group["n_errors"]) == (5, 0)
    assert _float(3) == 3.0 and math.isnan(_float(False)) and math.isnan(_float("1"))
    rows_of_two = Tally().add_all([_rec("1", 1.0, error="x"), _rec("2", 1.0, task="r", error="y")])
    assert error_count(rows_of_two.rows()) == 2


def test_a_tally_keeps_the_first_50_failures_by_default() -> None:
    tally = Tally().add_all(_rec(str(i), None, error=f"e{i}") for i in range(60))
    assert [f["error"] for f in tally.failures] == [f"e{i}" for i in range(50)]
    assert tally.counts[("b", "t", "")] == [60, 60, 0]


def test_results_document_and_summary_csv_carry_exact_numbers(tmp_path: Path) -> None:
    records = [_rec(str(i), float(i) / 3, retries=i % 2) for i in range(1, 4)]
    records.append(_rec("4", 1.0, subtask="s"))
    rows = Tally().add_all(records).rows()
    document = results_document(rows, {"config": {"name": "x"}})
    cell = document["results"]["t"]["b"]
    assert cell["m"] == round(math.fsum([1 / 3, 2 / 3, 1.0, 1.0]) / 4, 10)
    assert cell["m_n"] == 4 and cell["n_retries"] == 2 and cell["n_samples"] == 4
    assert cell["m_median"] == pytest.approx(2 / 3) and cell["m_p90"] == 1.0
    assert cell["m_p10"] == pytest.approx(1 / 3)
    sub = document["subtasks"]["t"]["s"]["b"]
    assert sub["m"] == 1.0 and sub["m_stderr"] is None and "n_retries" not in sub
    assert "m_median" not in sub
    assert document["config"] == {"name": "x"} and document["groups"] == {}
    text = summary_csv(rows)
    lines = text.splitlines()
    assert lines[0] == ",".join(SUMMARY_COLUMNS)
    assert lines[1] == "b,t,task,,m,0.75,0.1595711846,4,0,4,0.6666666667,0.3333333333,1,2"
    assert lines[2] == "b,t,subtask,s,m,1,,1,0,1,,,,0"
    (tmp_path / "samples.jsonl").write_bytes(
        b"".join(json.dumps(r).encode() + b"\n" for r in records)
    )
    written = write_results(tmp_path, {"config": {}})
    assert written["results"] == document["results"]
    assert (tmp_path / "summary.csv").read_text() == text
    results_text = (tmp_path / "results.json").read_text()
    assert results_text.endswith("}\n") and list(json.loads(results_text)) == [
        "config", "groups", "results", "subtasks",
    ]  # fmt: skip
    assert list(json.loads(results_text)["results"]["t"]["b"]) == sorted(cell)
    assert load_document(tmp_path, "results.json") == json.loads(results_text)
    assert json.loads((tmp_path / "results.json").read_text())["results"] == document["results"]
    back = written_rows(tmp_path)
    assert back is not None and back[0]["n"] == 4 and back[0]["value"] == pytest.approx(0.75)
    assert math.isnan(back[1]["stderr"]) and back[1]["n_retries"] == 0
    assert [type(back[0][c]) for c in ("value", "stderr", "median", "p10", "p90")] == [float] * 5
    assert [type(back[0][c]) for c in ("n", "n_errors", "n_samples", "n_retries")] == [int] * 4
    floats = to_frame([dict(back[0], n=4.0, n_errors=0.0, n_samples=4.0, n_retries=2.0)])
    assert [str(floats[c].dtype) for c in ("n", "n_errors", "n_samples", "n_retries")] == [
        "int64"
    ] * 4
    os.utime(tmp_path / "summary.csv", ns=(1, 1))
    assert written_rows(tmp_path) is None
    assert written_rows(tmp_path / "nowhere") is None


def _run_dir(folder: Path, values: list[float], groups: bool = False) -> Path:
    folder.mkdir()
    lines = [json.dumps(_rec(str(i), v, subtask="s")) for i, v in enumerate(values)]
    (folder / "samples.jsonl").write_text("\n".join(lines) + "\n")
    manifest: dict[str, Any] = {
        "manifest": {"tasks": [{"id": "mine", "type": "bfcl"}, {"type": "qa"}]},
        "data": {"t": {"groups": [{"name": "g", "members": ["s"]}]}} if groups else {},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_loading_many_runs_keeps_one_index_and_labels_each(tmp_path: Path) -> None:
    a = _run_dir(tmp_path / "a", [1.0, 0.0])
    b = _run_dir(tmp_path / "b", [1.0, 1.0, 1.0], groups=True)
    samples = load_samples([a, b])
    assert list(samples.index) == [0, 1, 2, 3, 4]
    assert list(samples["run"]) == ["a", "a", "b", "b", "b"]
    assert list(samples["scores.m"]) == [1.0, 0.0, 1.0, 1.0, 1.0]
    assert load_samples([]).empty
    assert read_groups(b) == {"t": [{"name": "g", "members": ["s"]}]}
    assert read_groups(a) == {} and read_groups(tmp_path) == {}
    frame = load_results([a, b])
    assert list(frame.index) == list(range(len(frame)))
    assert frame[frame["run"] == "b"]["level"].tolist() == ["task", "subtask", "group"]
    assert frame[frame["run"] == "a"]["subtask"].tolist() == ["", "s"]
    write_results(a, {})
    from_csv = load_results([a])
    assert from_csv["subtask"].tolist() == ["", "s"] and from_csv["value"].tolist() == [0.5, 0.5]


def test_run_view_reads_rows_records_labels_and_entry_ids(tmp_path: Path) -> None:
    run = _run_dir(tmp_path / "r", [1.0, 0.0], groups=True)
    view = RunView.open(run)
    assert [r["level"] for r in view.rows] == ["task", "subtask", "group"]
    assert view.aggregates["n"].tolist() == [2, 2, 2]
    assert [r["sample_id"] for r in view.records()] == ["0", "1"]
    assert view.entry_ids("task", "bfcl") == {"mine"} and view.entry_ids("task", "qa") == {"qa"}
    assert view.entry_ids("backend", "x") == set()
    assert view.label_counts("subtask") == {("t", "b", "s"): 2}
    assert view.failures == [] and RunView.read_manifest(tmp_path) == {}


def test_a_batch_larger_than_the_256_kib_buffer_reaches_the_os_early(
    tmp_path: Path, clock: _Clock
) -> None:
    path = tmp_path / "samples.jsonl"
    with SampleWriter(path) as writer:
        writer.write({"backend": "b", "task": "t", "sample_id": "1", "pad": "x" * 200_000})
        assert path.stat().st_size == 0
        writer.write({"backend": "b", "task": "t", "sample_id": "2", "pad": "x" * 100_000})
        assert path.stat().st_size > 0  # 300 KB pending: over the buffer, before the count
