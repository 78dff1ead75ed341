"""Trusting the run directory (issue 10): one writer at a time, records that any model output
can produce, secrets redacted by field (never by text)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness import Operational
from harness import Params
from harness import hookimpl
from harness import param
from harness._errors import RunDirError
from harness.testing import ScriptedBackend
from harness.testing import assert_run_dir
from tests.conftest import HARNESS
from tests.conftest import qa_files
from tests.conftest import qa_manifest
from tests.conftest import run_harness
from tests.conftest import write_jsonl


def _slow_manifest(tmp_path: Path, n: int = 200) -> Path:
    doc = {
        "name": "slow",
        "backends": [{"type": "calculator", "delay_s": 0.1}],  # 20 s in all: stopped early
        "tasks": [{"type": "addition", "count": n}],
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path, example_plugin: Path):
    manifest = _slow_manifest(tmp_path)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(example_plugin)}
    first = subprocess.Popen(
        [*HARNESS, "run", str(manifest), "--out", str(out), "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    while not (out / "samples.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = run_harness("run", str(manifest), "--out", str(out), env=env)
    retry = run_harness("run", str(manifest), "--out", str(out), "--retry-errors", env=env)
    assert first.poll() is None, "the first run ended too early for the test to mean anything"
    first.send_signal(signal.SIGINT)
    _, first_err = first.communicate(timeout=60)
    assert first.returncode == 130, first_err
    for refused in (second, retry):
        assert refused.returncode == 2, refused.stderr
        assert f"pid {first.pid}" in refused.stderr and "Traceback" not in refused.stderr
    records = [json.loads(line) for line in (out / "samples.jsonl").open()]
    assert records and len({r["sample_id"] for r in records}) == len(records)  # none twice
    again = run_harness("run", str(manifest), "--out", str(out), "--limit", "3", env=env)
    assert again.returncode == 0, again.stderr  # the lock went with its holder
    assert "0 sample(s) played" in again.stdout


def test_a_lone_surrogate_in_model_output_is_recorded_and_resumable(tmp_path: Path) -> None:
    qa, _ = qa_files(tmp_path, 3)
    replay = tmp_path / "odd.jsonl"
    replay.write_text(
        "".join(
            json.dumps({"task": "qa", "sample_id": f"s{i}", "output": f"\ud800 {i} \udfff"}) + "\n"
            for i in range(3)
        )
    )
    path = tmp_path / "m.json"
    path.write_text(json.dumps(qa_manifest(qa, replay)))
    for _ in range(2):  # the second run resumes over the same records
        result = run_harness("run", str(path), "--out", str(tmp_path / "run"))
        assert result.returncode == 0, result.stderr
    records = assert_run_dir(tmp_path / "run", samples=3)
    assert sorted(r["output"] for r in records) == [f"\ud800 {i} \udfff" for i in range(3)]


class KeyedParams(Params):
    """A scripted backend that needs a key."""

    api_key: str | None = param(None, secret=True, description="Never written anywhere.")
    responses: list[str] = param(["Paris"], description="Answers in order.")


class Keyed(ScriptedBackend):
    def info(self) -> dict[str, Any]:
        return {"answers_with": self.params.responses[0]}


class KeyedPlugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("keyed", Keyed, params=KeyedParams)


def _keyed_run(harness_run: Any, tmp_path: Path, key: str, **backend: Any) -> Path:
    qa = write_jsonl(
        tmp_path / "qa.jsonl", [{"id": "s0", "question": "Capital?", "answer": "Paris"}]
    )
    result = harness_run(
        {
            "name": "keyed",
            "backends": [{"type": "keyed", "api_key": key, **backend}],
            "tasks": [{"type": "qa", "path": str(qa)}],
        }
    )
    assert result.status == "finished"
    return result.run_dir


def test_a_literal_secret_is_redacted_by_field_with_a_warning(
    harness_host: Any, harness_run: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    harness_host.register(KeyedPlugin(), "keyed")
    run_dir = _keyed_run(harness_run, tmp_path, "sk-literal-secret-123")
    for path in run_dir.iterdir():
        assert "sk-literal-secret-123" not in path.read_text(encoding="utf-8"), path.name
    doc = json.loads((run_dir / "manifest.json").read_text())
    assert doc["manifest"]["backends"][0]["api_key"] == "***"
    assert "backends[0].api_key: a secret written literally" in caplog.text


def test_environment_values_in_ordinary_fields_do_not_mangle_outputs(
    harness_host: Any, harness_run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old text redaction turned every 'Paris' into '***' once SP=Paris was used."""
    harness_host.register(KeyedPlugin(), "keyed")
    monkeypatch.setenv("SP", "Paris")
    monkeypatch.setenv("THE_KEY", "sk-from-the-environment")
    run_dir = _keyed_run(harness_run, tmp_path, "${THE_KEY}", responses=["${SP}"])
    (record,) = [json.loads(line) for line in (run_dir / "samples.jsonl").open()]
    assert record["output"] == "Paris" and record["scores"]["exact_match"] == 1.0
    doc = json.loads((run_dir / "manifest.json").read_text())
    assert doc["manifest"]["backends"][0]["api_key"] == "${THE_KEY}"  # the reference, not the value
    assert doc["manifest"]["backends"][0]["responses"] == ["${SP}"]
    for path in run_dir.iterdir():
        assert "sk-from-the-environment" not in path.read_text(encoding="utf-8"), path.name


def test_an_environment_value_that_looks_like_json_does_not_break_the_run(
    harness_host: Any, harness_run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness_host.register(KeyedPlugin(), "keyed")
    monkeypatch.setenv("NOTHING", "null")
    run_dir = _keyed_run(harness_run, tmp_path, "${NOTHING}")
    assert json.loads((run_dir / "manifest.json").read_text())["name"] == "keyed"


class TimedParams(Params):
    """A scripted backend with an operational timeout."""

    responses: list[str] = param(["1"], description="Answers in order.")
    timeout_s: Operational[float] = param(1.0, description="May change on resume.")


class TimedPlugin:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("timed", ScriptedBackend, params=TimedParams)


def _resume_case(tmp_path: Path, **backend: Any) -> tuple[dict[str, Any], Path]:
    qa, _ = qa_files(tmp_path, 4)
    doc = {
        "name": "resume",
        "backends": [{"type": "timed", **backend}],
        "tasks": [{"type": "qa", "path": str(qa)}],
    }
    return doc, qa


def test_resume_refuses_a_changed_environment_value_and_names_the_field(
    harness_host: Any, harness_run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    harness_host.register(TimedPlugin(), "timed")
    monkeypatch.setenv("ANSWER", "1")
    doc, _ = _resume_case(tmp_path, responses=["${ANSWER}"])
    harness_run(doc)
    monkeypatch.setenv("ANSWER", "2")  # another model behind the same manifest text
    with pytest.raises(RunDirError) as refused:
        harness_run(doc)
    assert "backends[timed] (timed).responses changed" in str(refused.value)
    written = (tmp_path / "run" / "manifest.json").read_text()
    assert '"${ANSWER}"' in written and '"2"' not in written  # digests, never the values


def test_resume_refuses_an_edited_data_file(harness_host: Any, harness_run: Any, tmp_path: Path):
    harness_host.register(TimedPlugin(), "timed")
    doc, qa = _resume_case(tmp_path)
    harness_run(doc)
    qa.write_text(qa.read_text().replace('"answer": "0"', '"answer": "zero"'))
    with pytest.raises(RunDirError, match="data of 'qa' changed"):
        harness_run(doc)


def test_resume_refuses_another_plugin_version(harness_host: Any, harness_run: Any, tmp_path):
    harness_host.register(TimedPlugin(), "timed")
    doc, _ = _resume_case(tmp_path)
    harness_run(doc)
    path = tmp_path / "run" / "manifest.json"
    stored = json.loads(path.read_text())
    stored["experiment"]["entries"]["tasks[qa] (qa)"]["version"] = "harness 0.1.0"
    path.write_text(json.dumps(stored))
    with pytest.raises(RunDirError, match=r"tasks\[qa\] \(qa\): plugin harness 0.1.0 -> harness"):
        harness_run(doc)


def test_operational_parameters_may_change_on_resume_and_are_recorded(
    harness_host: Any, harness_run: Any, tmp_path: Path
) -> None:
    harness_host.register(TimedPlugin(), "timed")
    doc, _ = _resume_case(tmp_path, timeout_s=1)
    harness_run({**doc, "run": {"limit": 2}})
    doc["backends"][0]["timeout_s"] = 30  # the natural way to recover from an outage
    result = harness_run(doc)
    assert result.played == 2 and result.skipped == 2
    stored = json.loads((tmp_path / "run" / "manifest.json").read_text())
    (change,) = stored["resume_changes"]
    assert change["changed"] == [
        {"field": "backends[timed] (timed).timeout_s", "was": 1, "now": 30}
    ]
    assert stored["started_at"] <= change["at"]


def test_a_run_where_every_sample_failed_exits_1(tmp_path: Path) -> None:
    qa, _ = qa_files(tmp_path, 3)
    empty = write_jsonl(tmp_path / "empty.jsonl", [])  # no recorded answer for any sample
    path = tmp_path / "m.json"
    path.write_text(json.dumps(qa_manifest(qa, empty)))
    result = run_harness("run", str(path), "--out", str(tmp_path / "run"))
    assert result.returncode == 1, result.stderr
    assert "every sample ended in an error (first: ReplayError" in result.stderr
    assert "--retry-errors" in result.stderr and "Traceback" not in result.stderr
    assert_run_dir(tmp_path / "run", samples=3, errors=3)  # kept for --retry-errors


def test_cache_off_unquoted_as_the_docs_show_it_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    qa, _ = qa_files(tmp_path, 1)
    path.write_text(
        "name: t\nbackends:\n  - type: openai\n    model: m\n    cache: off\n"
        f"tasks:\n  - type: qa\n    path: {qa}\n"
    )
    result = run_harness("validate", str(path))
    assert result.returncode == 0, result.stderr


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join([*lines, "name: *a8", "backends: []", "tasks: []"]) + "\n")
    started = time.monotonic()
    result = run_harness("validate", str(path))
    assert result.returncode == 2, result.stderr
    assert "expands to more than 1,000,000 values" in result.stderr
    assert time.monotonic() - started < 60  # it used to run past 120 s and 2 GB


def test_validate_runs_the_plugins_preflight_checks(tmp_path: Path) -> None:
    """A missing GGUF file used to pass `validate` and fail only once `run` started."""
    qa, _ = qa_files(tmp_path, 1)
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: t\nbackends:\n  - type: llamacpp\n    model: missing.gguf\n"
        f"tasks:\n  - type: qa\n    path: {qa}\n"
    )
    checked = run_harness("validate", str(path))
    started = run_harness("run", str(path), "--out", str(tmp_path / "o"))
    for result in (checked, started):
        assert result.returncode == 2, result.stderr
        assert f"{path}: backends[0].model: model 'missing.gguf': no such file" in result.stderr
    assert not (tmp_path / "o").exists()  # nothing started
