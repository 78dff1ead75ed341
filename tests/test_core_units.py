"""Unit checks of the core pieces: overrides, env references, store repair, records, results."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from conftest import qa_files
from conftest import qa_manifest
from conftest import run_harness

from harness._errors import ManifestError
from harness._manifest import Entry
from harness._manifest import apply_overrides
from harness._manifest import expand_env
from harness._manifest import load_manifest
from harness._manifest import parse_key
from harness._play import WorkUnit
from harness._records import ChatRequest
from harness._records import ChatResponse
from harness._records import GenerationParams
from harness._records import Message
from harness._records import Outcome
from harness._records import Sample
from harness._records import Score
from harness._records import ToolCall
from harness._results import load_results
from harness._results import load_samples
from harness._run import run_manifest
from harness._store import SampleWriter
from harness._store import finished_keys
from harness._store import iter_records
from harness._store import repair_tail


@pytest.mark.parametrize(
    ("key", "parts"),
    [
        ("run.limit", ["run", "limit"]),
        ("tasks[0].limit", ["tasks", 0, "limit"]),
        ("tasks.1.path", ["tasks", 1, "path"]),
    ],
)
def test_parse_key(key: str, parts: list) -> None:
    assert parse_key(key) == parts


def test_overrides_parse_values_as_yaml_and_leave_the_original_alone() -> None:
    data = {"tasks": [{"type": "qa"}], "run": {}}
    out = apply_overrides(data, ["run.limit=5", "tasks[0].flag=true", "name=x y"], "m.yaml")
    assert out["run"]["limit"] == 5 and out["tasks"][0]["flag"] is True and out["name"] == "x y"
    assert data == {"tasks": [{"type": "qa"}], "run": {}}


def test_env_references_expand_and_report_missing(monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_T_KEY", "sk-secret")
    expanded, missing, used = expand_env({"a": ["x-${HARNESS_T_KEY}", "${HARNESS_T_NOPE}"]})
    assert expanded["a"][0] == "x-sk-secret" and used == ["sk-secret"]
    assert missing and missing[0].startswith("a[1]: environment variable HARNESS_T_NOPE")


def test_env_values_never_reach_the_run_directory(tmp_path: Path, host, monkeypatch) -> None:
    secret = "sk-THIS-IS-A-SECRET-123"
    monkeypatch.setenv("HARNESS_T_SECRET", secret)
    qa, replay = qa_files(tmp_path, 4)
    # the secret goes into a field the backend echoes back: the replay file's name
    leaky = tmp_path / f"replay-{secret}.jsonl"
    leaky.write_text(replay.read_text())
    manifest = qa_manifest(qa, tmp_path / "replay-${HARNESS_T_SECRET}.jsonl")
    manifest["description"] = "key ${HARNESS_T_SECRET}"
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    run_manifest(load_manifest(path, host), host, tmp_path / "o", progress=False)
    for file in (tmp_path / "o").iterdir():
        assert secret not in file.read_text(), file.name
    assert "${HARNESS_T_SECRET}" in (tmp_path / "o" / "manifest.json").read_text()


def test_repair_tail_cuts_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_bytes(b'{"backend":"b","task":"t","sample_id":"1"}\n{"backend":"b","ta')
    assert len(list(iter_records(path))) == 1
    repair_tail(path)
    assert path.read_bytes().endswith(b"}\n")
    with SampleWriter(path) as writer:
        writer.write({"backend": "b", "task": "t", "sample_id": "2"})
    assert finished_keys(path) == {("b", "t", "1"), ("b", "t", "2")}


def test_repair_tail_of_a_single_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "samples.jsonl"
    path.write_bytes(b'{"backend":"b"')
    repair_tail(path)
    assert path.read_bytes() == b""


def test_work_units_and_records_are_plain_data() -> None:
    entry = Entry("backend", "b", "replay", {"path": "/x"}, {"type": "replay", "path": "/x"})
    unit = WorkUnit(entry, entry, (), "/tmp", limit=3, shard=1, num_shards=4)
    assert pickle.loads(pickle.dumps(unit)) == unit
    request = ChatRequest(messages=(Message("user", "hi"),), tools=({"type": "function"},))
    assert json.loads(json.dumps(request.to_dict()))["messages"][0]["content"] == "hi"
    message = Message("assistant", None, tool_calls=(ToolCall("f", {"a": 1}),))
    assert Message.from_dict(message.to_dict()) == message


def test_results_api_and_compare(tmp_path: Path, host) -> None:
    qa, replay = qa_files(tmp_path, 9)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(qa_manifest(qa, replay)))
    for out in ("a", "b"):
        run_manifest(load_manifest(path, host), host, tmp_path / out, progress=False)
    frame = load_results([tmp_path / "a", tmp_path / "b"])
    assert set(frame["run"]) == {"a", "b"}
    assert frame["value"].tolist() == pytest.approx([6 / 9, 6 / 9])
    samples = load_samples([tmp_path / "a"])
    assert len(samples) == 9 and "scores.exact_match" in samples.columns
    result = run_harness("compare", str(tmp_path / "a"), str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    assert "a/replay" in result.stdout and "b/replay" in result.stdout
    assert "0.6667" in result.stdout


def test_report_command_rewrites_the_report(tmp_path: Path, host) -> None:
    qa, replay = qa_files(tmp_path, 3)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(qa_manifest(qa, replay)))
    run_manifest(load_manifest(path, host), host, tmp_path / "o", progress=False)
    (tmp_path / "o" / "report.html").unlink()
    result = run_harness("report", str(tmp_path / "o"))
    assert result.returncode == 0 and "exact_match" in (tmp_path / "o" / "report.html").read_text()
    missing = run_harness("report", str(tmp_path))
    assert missing.returncode != 0 and "not a run directory" in missing.stderr


def test_schema_command_composes_plugin_schemas() -> None:
    result = run_harness("schema")
    schema = json.loads(result.stdout)
    assert "backend.replay" in schema["$defs"] and "task.qa" in schema["$defs"]
    assert schema["$defs"]["backend.replay"]["additionalProperties"] is False


def test_composed_schema_validates_a_manifest(tmp_path: Path) -> None:
    import jsonschema

    schema = json.loads(run_harness("schema").stdout)
    good = {
        "name": "x",
        "backends": [{"type": "replay", "path": "r"}],
        "tasks": [{"type": "qa", "path": "q"}],
    }
    jsonschema.validate(good, schema)
    bad = {**good, "backends": [{"type": "replay", "pth": "r"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_load_manifest_collects_problems(tmp_path: Path, host) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("name: 3\nbackends: []\ntasks: []\n")
    with pytest.raises(ManifestError) as info:
        load_manifest(path, host)
    assert len(info.value.problems) == 3


def test_non_binary_metrics_get_median_and_percentiles(tmp_path: Path) -> None:
    from harness._results import aggregate_rows
    from harness._results import results_document

    records = [
        {
            "backend": "b",
            "task": "t",
            "sample_id": str(i),
            "error": None,
            "scores": {"latency_s": float(i), "accuracy": float(i % 2)},
        }
        for i in range(1, 11)
    ]
    (tmp_path / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = aggregate_rows(tmp_path / "samples.jsonl")
    cell = results_document(rows, {})["results"]["t"]["b"]
    assert (cell["latency_s_median"], cell["latency_s_p10"], cell["latency_s_p90"]) == (5, 1, 9)
    assert cell["latency_s"] == 5.5 and "accuracy_median" not in cell


def test_a_nan_score_counts_as_no_score_whether_fresh_or_resumed(tmp_path: Path) -> None:
    """NaN is written as null: the tally of a run and of its resumed reading must agree."""
    from harness._results import Tally
    from harness._store import SampleWriter
    from harness._store import iter_records

    records = [
        {"backend": "b", "task": "t", "sample_id": str(i), "error": None, "scores": {"m": v}}
        for i, v in enumerate([1.0, float("nan"), 0.0])
    ]
    with SampleWriter(tmp_path / "samples.jsonl") as writer:
        for record in records:
            writer.write(record)
    fresh = Tally().add_all(records).rows()
    resumed = Tally().add_all(iter_records(tmp_path / "samples.jsonl")).rows()
    assert fresh == resumed
    assert [(r["value"], r["n"]) for r in fresh] == [(0.5, 2)]


@pytest.mark.parametrize(
    "cls",
    [ToolCall, Message, GenerationParams, ChatRequest, ChatResponse, Sample, Outcome, Score],
)
def test_records_build_as_their_dataclass_would(cls: type) -> None:
    """The records' fast ``__init__`` keeps the dataclass contract: same signature, defaults,
    a new object from each factory, positional and keyword use, equality, immutability."""
    import dataclasses
    import inspect

    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    for p, f in zip(params, fields, strict=True):
        if f.default is not dataclasses.MISSING:
            assert p.default == f.default
        elif f.default_factory is not dataclasses.MISSING:
            assert repr(p.default) == "<factory>"
        else:
            assert p.default is inspect.Parameter.empty
    required = [p.name for p in params if p.default is inspect.Parameter.empty]
    values = [f"v{i}" for i in range(len(required))]
    a, b = cls(*values), cls(**dict(zip(required, values, strict=True)))
    assert a == b and repr(a) == repr(b)
    for field in dataclasses.fields(cls):
        if field.default_factory is not dataclasses.MISSING:
            assert getattr(a, field.name) == field.default_factory()
            assert getattr(a, field.name) is not getattr(b, field.name)  # never shared
        elif field.default is not dataclasses.MISSING:
            assert getattr(a, field.name) == field.default
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.__setattr__(dataclasses.fields(cls)[0].name, "x")
    assert pickle.loads(pickle.dumps(a)) == a
    assert dataclasses.replace(a) == a
