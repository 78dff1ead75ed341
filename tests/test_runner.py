"""End-to-end runs through the real CLI: records, resume, crashes, interrupts, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import HARNESS
from conftest import qa_files
from conftest import qa_manifest
from conftest import run_harness
from conftest import write_jsonl

from harness._manifest import load_manifest
from harness._run import run_manifest
from harness._store import iter_records


def lines(path: Path) -> list[dict]:
    return list(iter_records(path))


def test_run_writes_every_file_and_scores(tmp_path: Path, write_manifest) -> None:
    qa, replay = qa_files(tmp_path, 30)
    manifest = write_manifest(qa_manifest(qa, replay))
    started = time.monotonic()
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "out"), cwd=tmp_path)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    for name in ("manifest.json", "samples.jsonl", "results.json", "summary.csv", "report.html"):
        assert (out / name).exists(), name
    records = lines(out / "samples.jsonl")
    assert len(records) == 30
    for rec in records:
        assert {
            "backend",
            "task",
            "sample_id",
            "output",
            "calls",
            "scores",
            "error",
            "timing",
        } <= set(rec)
        # seconds, measured: within the command's own wall time (not ms, not a timestamp)
        assert type(rec["timing"]["total_s"]) is float
        assert 0 <= rec["timing"]["total_s"] < elapsed
    assert sum(rec["timing"]["total_s"] for rec in records) > 0
    # every third sample (i % 3 == 0) was answered wrongly by construction
    results = json.loads((out / "results.json").read_text())
    cell = results["results"]["qa"]["replay"]
    assert cell["exact_match"] == pytest.approx(20 / 30)
    assert cell["n_samples"] == 30 and cell["n_errors"] == 0
    assert "report:" in result.stdout and "exact_match" in result.stdout


def test_missing_replay_line_is_an_error_record_not_a_skip(tmp_path: Path, host) -> None:
    qa, replay = qa_files(tmp_path, 10, answer_every=2)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(qa_manifest(qa, replay)))
    result = run_manifest(load_manifest(manifest, host), host, tmp_path / "out", progress=False)
    records = {r["sample_id"]: r for r in lines(tmp_path / "out" / "samples.jsonl")}
    assert len(records) == 10
    assert records["s1"]["error"] and "no line" in records["s1"]["error"]
    assert records["s1"]["scores"] == {}
    assert records["s2"]["error"] is None
    cell = result.results["results"]["qa"]["replay"]
    assert cell["n_errors"] == 5 and cell["exact_match_n"] == 5


def test_rerun_resumes_and_recomputes_nothing(tmp_path: Path, host) -> None:
    qa, replay = qa_files(tmp_path, 40)
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(qa_manifest(qa, replay)))
    first = run_manifest(load_manifest(manifest, host, limit=15), host, tmp_path / "o", False)
    assert first.played == 15
    second = run_manifest(load_manifest(manifest, host), host, tmp_path / "o", False)
    assert (second.played, second.skipped) == (25, 15)
    third = run_manifest(load_manifest(manifest, host), host, tmp_path / "o", False)
    assert third.played == 0
    keys = [r["sample_id"] for r in lines(tmp_path / "o" / "samples.jsonl")]
    assert len(keys) == len(set(keys)) == 40
    assert len(json.loads((tmp_path / "o" / "manifest.json").read_text())["resumed_at"]) == 2


def test_resume_into_another_plans_directory_is_refused(tmp_path: Path, write_manifest) -> None:
    qa, replay = qa_files(tmp_path, 5)
    first = write_manifest(qa_manifest(qa, replay), "a.yaml")
    assert run_harness("run", str(first), "--out", str(tmp_path / "o")).returncode == 0
    other = qa_manifest(qa, replay)
    other["tasks"][0]["id"] = "other"
    second = write_manifest(other, "b.yaml")
    result = run_harness("run", str(second), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "different experiment" in result.stderr and "Traceback" not in result.stderr
    assert "tasks[other] (qa): added; tasks[qa] (qa): removed" in result.stderr


def _count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _start(manifest: Path, out: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [*HARNESS, "run", str(manifest), "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def _kill_when(proc: subprocess.Popen, samples: Path, at_least: int, sig: int) -> int:
    deadline = time.monotonic() + 60
    while _count_lines(samples) < at_least:
        assert proc.poll() is None, (
            f"run ended before it could be interrupted: {proc.stderr.read()}"
        )
        assert time.monotonic() < deadline, "run made no progress"
        time.sleep(0.005)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc.returncode


@pytest.mark.slow
def test_sigkill_midway_then_resume_matches_uninterrupted_run(tmp_path: Path, write_manifest):
    n = 10_000
    qa, replay = qa_files(tmp_path, n)
    manifest = write_manifest(qa_manifest(qa, replay))
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    for at_least in (1_500, 6_000):  # two crashes, the second into an already resumed run
        proc = _start(manifest, killed)
        assert _kill_when(proc, killed / "samples.jsonl", at_least, signal.SIGKILL) == -9
        assert not (killed / "results.json").exists()
        assert _count_lines(killed / "samples.jsonl") < n
    finish = run_harness("run", str(manifest), "--out", str(killed), "--no-progress")
    assert finish.returncode == 0, finish.stderr
    keys = [(r["backend"], r["task"], r["sample_id"]) for r in lines(killed / "samples.jsonl")]
    assert len(keys) == n and len(set(keys)) == n
    assert run_harness("run", str(manifest), "--out", str(clean), "--no-progress").returncode == 0
    assert (killed / "results.json").read_text() == (clean / "results.json").read_text()
    assert (killed / "summary.csv").read_text() == (clean / "summary.csv").read_text()


@pytest.mark.slow
def test_ctrl_c_exits_130_and_resumes(tmp_path: Path, write_manifest, example_plugin: Path):
    manifest = write_manifest(
        {
            "name": "slow",
            "backends": [{"type": "calculator", "delay_s": 0.02}],
            "tasks": [{"type": "addition", "count": 400}],
        }
    )
    env = {**os.environ, "PYTHONPATH": str(example_plugin)}
    out = tmp_path / "out"
    proc = _start(manifest, out, env=env)
    assert _kill_when(proc, out / "samples.jsonl", 64, signal.SIGINT) == 130
    assert "resume" in proc.stderr.read()
    hook = json.loads((out / "example-plugin-hook.json").read_text())
    assert hook == {"status": "interrupted", "has_results": False}
    done = _count_lines(out / "samples.jsonl")
    assert 64 <= done < 400
    result = run_harness(
        "run", str(manifest), "--out", str(out), env={"PYTHONPATH": str(example_plugin)}
    )
    assert result.returncode == 0, result.stderr
    assert f"{400 - done} sample(s) played, {done} already done" in result.stdout
    assert json.loads((out / "example-plugin-hook.json").read_text())["status"] == "finished"


def test_backend_that_cannot_start_exits_1_and_keeps_nothing_broken(tmp_path: Path, write_manifest):
    qa, _ = qa_files(tmp_path, 3)
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"sample_id": "s0", "output": "x"}])
    bad.write_text(bad.read_text() + "{not json\n")
    manifest = write_manifest(qa_manifest(qa, bad))
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "bad.jsonl: line 2: not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_sample_failures_are_recorded_with_threads(tmp_path: Path, write_manifest, example_plugin):
    manifest = write_manifest(
        {
            "name": "flaky",
            "backends": [
                {"type": "calculator", "fail_every": 4, "wrong_every": 5, "max_concurrency": 4}
            ],
            "tasks": [{"type": "addition", "count": 40}],
            "run": {"concurrency": 8},
        }
    )
    env = {"PYTHONPATH": str(example_plugin)}
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"), env=env)
    assert result.returncode == 0, result.stderr
    records = lines(tmp_path / "o" / "samples.jsonl")
    assert len(records) == 40 and len({r["sample_id"] for r in records}) == 40
    failed = [r for r in records if r["error"]]
    assert len(failed) == 10 and all("overheated" in r["error"] for r in failed)
    assert "could not be scored" in result.stderr


def test_retry_errors_plays_failed_samples_again(tmp_path: Path, example_plugin: Path) -> None:
    """An outage (every 2nd call fails), then a resume with the outage over (an operational
    parameter may change): only --retry-errors plays the failed samples again."""
    env = {"PYTHONPATH": str(example_plugin)}
    doc = {
        "name": "flaky",
        "backends": [{"type": "calculator", "fail_every": 2}],
        "tasks": [{"type": "addition", "count": 10}],
    }
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(doc))
    out = tmp_path / "o"
    assert run_harness("run", str(manifest), "--out", str(out), env=env).returncode == 0
    assert sum(1 for r in lines(out / "samples.jsonl") if r["error"]) == 5
    doc["backends"][0]["fail_every"] = 0
    manifest.write_text(json.dumps(doc))
    plain = run_harness("run", str(manifest), "--out", str(out), env=env)
    assert "0 sample(s) played, 10 already done" in plain.stdout, plain.stderr
    retried = run_harness("run", str(manifest), "--out", str(out), "--retry-errors", env=env)
    assert retried.returncode == 0, retried.stderr
    assert "5 sample(s) played, 5 already done" in retried.stdout
    records = lines(out / "samples.jsonl")
    assert len(records) == 10 and len({r["sample_id"] for r in records}) == 10
    assert not any(r["error"] for r in records)
