"""Inputs that used to end in a traceback or a wrong exit code (issue 10, item 6): each gets
one line naming the file, the line and the fix, with the contract's exit code, and nothing
already computed is lost."""

from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path

import pytest

from harness import InputError
from harness import parse_json
from harness import read_jsonl
from tests.conftest import HARNESS
from tests.conftest import qa_files
from tests.conftest import qa_manifest
from tests.conftest import run_harness

DEEP = "[" * 900 + "]" * 900
HUGE = "1" * 5000


def _manifest(tmp_path: Path, qa: Path, replay: Path, name: str = "m.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(qa_manifest(qa, replay)))
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return run_harness("run", *args, "--no-progress")


def _one_line_error(result: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def _finished_run(tmp_path: Path, n: int = 6) -> tuple[Path, Path]:
    qa, replay = qa_files(tmp_path, n)
    manifest = _manifest(tmp_path, qa, replay)
    out = tmp_path / "run"
    assert _run(str(manifest), "--out", str(out)).returncode == 0
    return manifest, out


@pytest.mark.parametrize("line", ["[1, 2]", '{"x": 1}', "7", '{"backend": "b"}'])
def test_a_json_line_that_is_not_a_record_is_named_not_a_traceback(tmp_path: Path, line: str):
    manifest, out = _finished_run(tmp_path)
    with (out / "samples.jsonl").open("a") as handle:
        handle.write(line + "\n")
    result = _run(str(manifest), "--out", str(out))
    _one_line_error(result, 2, "samples.jsonl: line 7", "not a sample record")


def test_retry_errors_over_a_corrupt_line_names_it_and_rewrites_nothing(tmp_path: Path) -> None:
    manifest, out = _finished_run(tmp_path)
    samples = out / "samples.jsonl"
    with samples.open("a") as handle:
        handle.write('{"backend": \n')
    before = samples.read_bytes()
    result = _run(str(manifest), "--out", str(out), "--retry-errors")
    _one_line_error(result, 2, "samples.jsonl: line 7", "not valid JSON")
    assert samples.read_bytes() == before
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".tmp")) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"id": "s0", "question": "caf\xe9?", "answer": "0"}\n', ["line 1", "not UTF-8"]),
        (b'{"id": "s0", "question": "q?", "answer": ' + HUGE.encode() + b"}\n", ["4,300 digits"]),
        (b'{"id": "s0", "question": "q?", "answer": "0"}\n[1, \n', ["line 2", "not valid JSON"]),
    ],
)
def test_unreadable_task_data_is_one_line_exit_2(tmp_path: Path, content: bytes, words: list[str]):
    _, replay = qa_files(tmp_path, 2)
    qa = tmp_path / "bad.jsonl"
    qa.write_bytes(content)
    result = _run(str(_manifest(tmp_path, qa, replay)), "--out", str(tmp_path / "o"))
    _one_line_error(result, 2, "bad.jsonl", *words)


def test_recorded_outputs_that_are_not_text_are_refused_with_the_line(tmp_path: Path) -> None:
    qa, _ = qa_files(tmp_path, 2)
    replay = tmp_path / "rec.jsonl"
    replay.write_text('{"task": "qa", "sample_id": "s0", "output": ' + DEEP + "}\n")
    result = _run(str(_manifest(tmp_path, qa, replay)), "--out", str(tmp_path / "o"))
    _one_line_error(result, 2, "rec.jsonl: line 1", "'output' must be a string")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"name": "d", "x": ' + DEEP + "}", ["nested too deeply"]),
        ('{"name": "d", "run": {"seed": ' + HUGE + "}}", ["4,300 digits"]),
        ("name: d\nrun:\n  seed: " + HUGE + "\n", ["4,300 digits"]),
    ],
)
def test_manifests_too_deep_or_too_long_to_read_are_one_line(tmp_path: Path, text, words):
    path = tmp_path / "m.yaml"
    path.write_text(text)
    _one_line_error(run_harness("validate", str(path)), 2, "m.yaml", *words)


def test_a_huge_number_given_with_set_is_one_line(tmp_path: Path) -> None:
    qa, replay = qa_files(tmp_path, 2)
    manifest = _manifest(tmp_path, qa, replay)
    result = run_harness("validate", str(manifest), "--set", f"run.seed={HUGE}")
    line = _one_line_error(result, 2, "--set run.seed=", "4,300 digits")
    assert len(line) < 300


def test_the_reader_names_line_and_fault(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n\n{"b": ' + DEEP.encode() + b"}\n")
    assert [n for n, _ in read_jsonl(path)] == [1, 3]  # blank lines skipped, deep is fine
    with pytest.raises(InputError, match=r"x: JSON nested too deeply"):
        parse_json("[" * 100_000, "x")
    with pytest.raises(InputError, match=r"nowhere.jsonl: cannot read"):
        list(read_jsonl(tmp_path / "nowhere.jsonl"))


def test_a_deleted_manifest_json_is_explained_and_adopt_continues_the_run(tmp_path: Path):
    manifest, out = _finished_run(tmp_path)
    (out / "manifest.json").unlink()
    lines = (out / "samples.jsonl").read_text().splitlines()
    (out / "samples.jsonl").write_text("\n".join(lines[:4]) + "\n")  # two samples left to play
    refused = _run(str(manifest), "--out", str(out))
    _one_line_error(refused, 2, "no manifest.json", "--adopt")
    adopted = _run(str(manifest), "--out", str(out), "--adopt")
    assert adopted.returncode == 0, adopted.stderr
    assert "2 sample(s) played, 4 already done" in adopted.stdout
    doc = json.loads((out / "manifest.json").read_text())
    assert doc["adopted"]["records"] == 4
    again = _run(str(manifest), "--out", str(out))  # checked normally from now on
    assert again.returncode == 0 and "0 sample(s) played" in again.stdout
    assert json.loads((out / "manifest.json").read_text())["adopted"] == doc["adopted"]


def _limit_file_size(max_bytes: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))

    return apply


def test_a_full_disk_names_the_file_leaves_no_temp_files_and_keeps_what_was_written(
    tmp_path: Path,
) -> None:
    """The file-size limit makes writes past 24 KiB fail as a full disk does (Python ignores
    SIGXFSZ, so write() gets EFBIG): the same error path, with no root or mount needed."""
    qa, replay = qa_files(tmp_path, 400)
    manifest = _manifest(tmp_path, qa, replay)
    out = tmp_path / "run"
    command = [*HARNESS, "run", str(manifest), "--out", str(out), "--no-progress"]
    full = subprocess.run(
        [*command, "--set", "run.flush_every=1"],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size(24 * 1024),
        timeout=120,
    )
    line = _one_line_error(full, 1, "samples.jsonl", "cannot write", "rerun the same command")
    assert "File too large" in line or "No space" in line
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []
    kept = len((out / "samples.jsonl").read_bytes().splitlines())
    assert kept > 10
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    records = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert sorted(r["sample_id"] for r in records) == sorted(f"s{i}" for i in range(400))


def test_a_full_disk_while_writing_results_leaves_no_temp_file(tmp_path: Path) -> None:
    qa, replay = qa_files(tmp_path, 300)
    manifest = _manifest(tmp_path, qa, replay)
    out = tmp_path / "run"
    command = [*HARNESS, "run", str(manifest), "--out", str(out), "--no-progress"]
    assert subprocess.run(command, capture_output=True, timeout=120).returncode == 0
    (out / "report.html").unlink()
    report_size = 1024  # the page is ~2 KiB; `harness report` writes nothing else
    full = subprocess.run(
        [*HARNESS, "report", str(out)],
        capture_output=True,
        text=True,
        preexec_fn=_limit_file_size(report_size),
        timeout=120,
    )
    _one_line_error(full, 1, "report.html", "cannot write")
    assert [p.name for p in out.iterdir() if p.name.startswith(".report")] == []
