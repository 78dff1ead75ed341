"""Parts with a lifecycle: built once per run through one builder, closed at the end whatever
happened; typed lifecycle events; hooks and metrics that raise are isolated; plugins add
report sections; parameters declared once as typed Params. Uses ``harness.testing``."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any
from typing import Literal

import pytest

from harness import BuildContext
from harness import HarnessError
from harness import ManifestError
from harness import Metric
from harness import Params
from harness import ReportSection
from harness import RunEnded
from harness import RunStarted
from harness import SampleFinished
from harness import SampleRecord
from harness import Task
from harness import ToolCall
from harness import hookimpl
from harness import load_manifest
from harness import param
from harness.testing import assert_run_dir

EVENTS: list[Any] = []
BUILT: Counter[str] = Counter()
CLOSED: Counter[str] = Counter()


class Tracked:
    """Counts how often parts of a kind are built and closed."""

    def __init__(self, params: Any, context: BuildContext) -> None:
        self.params, self.context = params, context
        BUILT[type(self).__name__] += 1

    def close(self) -> None:
        CLOSED[type(self).__name__] += 1


class CountParams(Params):
    """Parameters of the ``count`` task."""

    n: int = param(3, minimum=1, description="How many samples.")
    prefix: str = param("q", description="Sample id prefix.")
    style: Literal["plain", "loud"] = param("plain", description="How to ask.")
    tags: list[str] = param(["a"], description="Free tags.")
    notes: str | None = param(description="Optional notes.", schema={"minLength": 2})


class CountTask(Tracked, Task):
    default_metrics = ("length", "fragile")

    def size(self) -> int:
        return int(self.params.n)

    def samples(self) -> Any:
        from harness import Message
        from harness import Sample

        assert isinstance(self.params, CountParams)  # declared with params=: an instance
        for i in range(self.params.n):
            yield Sample(id=f"{self.params['prefix']}{i}", messages=(Message("user", str(i)),))


class Length(Tracked, Metric):
    def score(self, sample: Any, outcome: Any) -> dict[str, float]:
        return {"length": float(len(outcome.output or ""))}


class Fragile(Tracked, Metric):
    """Raises on the second sample only."""

    def score(self, sample: Any, outcome: Any) -> dict[str, float]:
        if sample.id.endswith("1"):
            raise ZeroDivisionError("boom")
        return {"fragile": 1.0}


class Plugin:
    @hookimpl
    def register_tasks(self, register: Any) -> None:
        register("count", CountTask, params=CountParams)

    @hookimpl
    def register_metrics(self, register: Any) -> None:
        register("length", Length)
        register("fragile", Fragile)

    @hookimpl
    def on_run_start(self, event: RunStarted) -> None:
        EVENTS.append(event)

    @hookimpl
    def on_sample_finished(self, event: SampleFinished) -> None:
        EVENTS.append(event)
        raise RuntimeError("a logger with a bug")

    @hookimpl
    def on_run_end(self, event: RunEnded) -> None:
        EVENTS.append(event)

    @hookimpl
    def report_sections(self, run: Any) -> list[ReportSection]:
        n = sum(1 for _ in run.records())
        return [ReportSection("Counted samples", f"<p>{n} records</p>", order=5)]


class BrokenReport:
    @hookimpl
    def report_sections(self, run: Any) -> list[ReportSection]:
        raise KeyError("missing field")


@pytest.fixture
def counting(harness_host: Any) -> Any:
    EVENTS.clear()
    BUILT.clear()
    CLOSED.clear()
    harness_host.register(Plugin(), "counting")
    return harness_host


def manifest(**run: Any) -> dict[str, Any]:
    return {
        "name": "lifecycle",
        "backends": [
            {"type": "scripted", "id": "a", "responses": ["x", "yy"]},
            {"type": "scripted", "id": "b", "responses": ["zzz"]},
        ],
        "tasks": [
            {"type": "count", "id": "t1", "notes": "ok"},
            {"type": "count", "id": "t2", "n": 2, "notes": "ok"},
        ],
        "run": run or {"seed": 1},
    }


def test_parts_are_built_once_per_run_and_closed_at_the_end(counting: Any, harness_run: Any):
    result = harness_run(manifest())
    assert result.status == "finished"
    assert BUILT == {"CountTask": 2, "Length": 1, "Fragile": 1}  # metrics: once, not per unit
    assert CLOSED == BUILT
    assert_run_dir(result.run_dir, samples=2 * (3 + 2))


def test_parts_are_closed_when_a_run_fails(counting: Any, harness_run: Any) -> None:
    doc = manifest()
    doc["backends"][0]["responses"] = []  # the scripted backend raises: samples get errors
    doc["tasks"][0]["prefix"] = "dup"
    doc["tasks"][0]["id"] = "t1"

    class Duplicates(CountTask):
        def samples(self) -> Any:
            yield from super().samples()
            yield from super().samples()  # the same ids twice: the run stops

    class DupPlugin:
        @hookimpl
        def register_tasks(self, register: Any) -> None:
            register("dups", Duplicates, params=CountParams)

    counting.register(DupPlugin(), "dups")
    doc["tasks"] = [{"type": "dups", "notes": "ok"}]
    with pytest.raises(HarnessError, match="yielded sample id 'q0' twice"):
        harness_run(doc)
    assert CLOSED == BUILT and BUILT["Duplicates"] == 1
    ended = [e for e in EVENTS if isinstance(e, RunEnded)]
    assert [e.status for e in ended] == ["failed"] and "twice" in (ended[0].error or "")


def test_lifecycle_hooks_get_typed_events_and_a_raising_hook_is_isolated(
    counting: Any, harness_run: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="harness"):
        result = harness_run(manifest())
    assert result.status == "finished" and result.played == 10
    started, *finished, ended = EVENTS
    assert isinstance(started, RunStarted) and started.to_play == 10
    assert len(finished) == 10 and all(isinstance(e, SampleFinished) for e in finished)
    assert all(isinstance(e.record, SampleRecord) for e in finished)
    assert {e.record.backend for e in finished} == {"a", "b"}
    assert isinstance(ended, RunEnded) and ended.status == "finished" and ended.played == 10
    assert ended.results is not None and "results" in ended.results
    assert len(result.hook_errors) == 10
    assert "plugin 'counting': on_sample_finished failed: RuntimeError" in result.hook_errors[0]
    assert "a logger with a bug" in caplog.text


def test_a_metric_that_raises_keeps_the_other_scores(counting: Any, harness_run: Any) -> None:
    result = harness_run(manifest())
    records = {(r["backend"], r["task"], r["sample_id"]): r for r in assert_run_dir(result.run_dir)}
    broken = records[("a", "t1", "q1")]
    assert broken["error"] is None
    assert broken["metric_errors"] == {"fragile": "ZeroDivisionError: boom"}
    assert broken["scores"] == {"length": 2.0}  # the other metric kept its score
    assert records[("a", "t1", "q0")]["scores"] == {"length": 1.0, "fragile": 1.0}
    assert result.metric_errors == {"fragile": 4}  # q1 of each task on each backend
    cell = result.results["results"]["t1"]["a"]
    assert cell["fragile_n"] == 2 and cell["length_n"] == 3


def test_the_cli_exits_1_and_names_the_metric_that_failed(counting: Any, tmp_path: Path):
    from click.testing import CliRunner

    from harness._cli import cli

    path = tmp_path / "m.yaml"
    path.write_text(json.dumps(manifest()))
    result = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    assert "metrics failed: 'fragile' on 4 sample(s)" in result.output
    assert "first: metric 'fragile' on sample 'q1': ZeroDivisionError: boom" in result.output
    assert "--retry-errors" in result.output
    assert (tmp_path / "run" / "results.json").exists()  # what finished is kept


def test_plugins_add_report_sections_and_a_broken_one_does_not_break_the_report(
    counting: Any, harness_run: Any
) -> None:
    counting.register(BrokenReport(), "broken-report")
    result = harness_run(manifest())
    page = (result.run_dir / "report.html").read_text(encoding="utf-8")
    assert "<h2>Counted samples</h2>\n<p>10 records</p>" in page
    assert "<h2>Report sections that failed</h2>" in page and "KeyError" in page
    # plugin sections come after the core's summary and figures, before its tables
    section = page.index("<h2>Counted samples</h2>")
    assert page.index("<h2>Figures</h2>") < section < page.index("<h2>Tables</h2>")
    assert any("broken-report" in e and "KeyError" in e for e in result.hook_errors)


def test_run_view_names_a_plugins_entries_whatever_their_ids(
    counting: Any, harness_run: Any
) -> None:
    from harness import RunView

    result = harness_run(manifest())
    view = RunView.open(result.run_dir)
    assert view.entry_ids("task", "count") == {"t1", "t2"}
    assert view.entry_ids("backend", "scripted") == {"a", "b"}
    assert view.entry_ids("metric", "count") == set()
    mine = [r for r in view.records() if r["task"] in view.entry_ids("task", "count")]
    assert len(mine) == 10


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ('n: int = param("abc")', "A.n: the default 'abc' does not match"),
        ("n: int = param(0, minimum=1)", "A.n: the default 0 does not match"),
        ("n: object = param(None)", "A.n: type <class 'object'> has no JSON Schema"),
    ],
)
def test_a_params_declaration_is_checked_when_the_class_is_defined(
    declaration: str, message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        exec(f"class A(Params):\n    {declaration}", {"Params": Params, "param": param})


def test_params_declare_each_parameter_once() -> None:
    schema = CountParams.json_schema()
    props = schema["properties"]
    assert props["n"] == {
        "type": "integer",
        "minimum": 1,
        "default": 3,
        "description": "How many samples.",
    }
    assert props["style"]["enum"] == ["plain", "loud"]
    assert props["tags"] == {
        "type": "array",
        "items": {"type": "string"},
        "default": ["a"],
        "description": "Free tags.",
    }
    assert props["notes"] == {
        "type": ["string", "null"],
        "minLength": 2,
        "description": "Optional notes.",
    }
    assert schema["required"] == ["notes"]
    a, b = CountParams(notes="xx"), CountParams(notes="xx")
    a.tags.append("b")
    assert b.tags == ["a"]  # a list default is copied per instance
    assert dict(CountParams(notes="xx", n=5)) == {
        "n": 5,
        "prefix": "q",
        "style": "plain",
        "tags": ["a"],
        "notes": "xx",
    }


def test_declared_constraints_validate_manifests(counting: Any, tmp_path: Path) -> None:
    doc = manifest()
    doc["tasks"][0].update(n=0, style="shouty", extra=1)
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as info:
        load_manifest(path, counting)
    text = "\n".join(info.value.problems)
    assert "tasks[0].n: 0 is out of range (minimum 1)" in text
    assert "tasks[0].style: 'shouty' is not allowed; use one of 'plain', 'loud'" in text
    assert "tasks[0].extra: unknown key" in text


def test_an_optional_parameter_accepts_null_in_a_manifest(counting: Any, tmp_path: Path) -> None:
    doc = manifest()
    doc["tasks"][0].update(notes=None)
    path = tmp_path / "null.yaml"
    path.write_text(json.dumps(doc))
    assert load_manifest(path, counting).tasks[0].params["notes"] is None
    doc["tasks"][0].update(notes=3)
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="notes"):
        load_manifest(path, counting)


def test_context_build_validates_builds_once_and_closes_with_the_run(counting: Any) -> None:
    from harness._parts import Builder

    builder = Builder(counting, Path("."), 0)
    context = BuildContext("owner", Path("."), builder=builder)
    first = context.build("metric", "length")
    assert context.build("metric", {"type": "length"}) is first  # once per spec
    with pytest.raises(HarnessError, match=r"owner: backend\.responses: expected a list"):
        context.build("backend", {"type": "scripted", "responses": 5})
    lazy = context.build("task", {"type": "count", "notes": "ok"}, lazy=True)
    assert BUILT["CountTask"] == 0  # validated, not built
    task = lazy()
    assert lazy() is task and BUILT["CountTask"] == 1
    assert builder.close() == [] and CLOSED == {"Length": 1, "CountTask": 1}


def test_tool_call_from_openai_reads_every_shape_and_refuses_the_rest() -> None:
    expected = ToolCall("f", {"x": 1})
    assert ToolCall.from_openai({"name": "f", "arguments": {"x": 1}}) == expected
    assert ToolCall.from_openai({"function": {"name": "f", "arguments": '{"x": 1}'}}) == expected
    assert ToolCall.from_openai({"name": "f", "arguments": " "}) == ToolCall("f", {})
    assert ToolCall.from_openai(expected.to_openai("id1")) == expected
    for bad, why in (
        ({"arguments": {}}, "needs a string 'name'"),
        ({"name": "f", "arguments": "[1]"}, "not a JSON object"),
        ({"name": "f", "arguments": "{x"}, "not valid JSON"),
        ("f(x=1)", "needs a string 'name'"),
    ):
        with pytest.raises(ValueError, match=why):
            ToolCall.from_openai(bad)


def test_compare_labels_columns_with_the_task_variant(tmp_path: Path, harness_run: Any) -> None:
    from harness._report import compare_table

    replay = tmp_path / "replay.jsonl"
    replay.write_text(
        json.dumps({"task": "bfcl", "sample_id": "simple_python_0", "output": "[f()]"}) + "\n"
    )
    doc = {
        "name": "v",
        "backends": [{"type": "replay", "path": str(replay)}],
        "tasks": [{"type": "bfcl", "categories": ["simple_python"], "limit": 1}],
    }
    result = harness_run(doc)
    table = compare_table([result.run_dir])
    assert list(table.columns) == ["run/replay (prompt)"]
