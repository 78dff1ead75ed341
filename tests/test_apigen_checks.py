"""APIGen's three stages (format, execution, semantic) on APIGen-format samples built against
the project's tool sets; the judge is a replayed or scripted backend, so no model is needed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_llama
from conftest import write_jsonl
from harness_plugins.apigen._checks import SEMANTIC_PROMPT_VERSION
from harness_plugins.apigen._checks import format_errors
from harness_plugins.apigen._checks import parse_judgement
from harness_plugins.shared.toolsets import get_toolset

from harness import Backend
from harness import ChatResponse
from harness import Message
from harness import Outcome
from harness import Sample
from harness import ToolCall
from harness import hookimpl
from harness._manifest import Entry
from harness._manifest import load_manifest
from harness._parts import Builder
from harness._run import run_manifest

WEATHER_TOOLS = get_toolset("weather").apigen_tools()
MATH_TOOLS = get_toolset("math_tools").apigen_tools()


def sample(sid: str, query: str, tools: list[dict], toolset: str | None = None) -> Sample:
    metadata: dict[str, Any] = {"tools": tools}
    if toolset:
        metadata["toolset"] = toolset
    return Sample(id=sid, messages=(Message("user", query),), metadata=metadata)


def outcome(*calls: tuple[str, dict]) -> Outcome:
    return Outcome(output="", calls=tuple(ToolCall(n, a) for n, a in calls))


def metric(host, kind: str, **params: Any) -> Any:
    return Builder(host, Path("."), 0).build_entry(
        Entry("metric", kind, kind, params, {"type": kind})
    )


PARIS = sample("s1", "What is the weather in Paris?", WEATHER_TOOLS, "weather")


# --- stage 1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("calls", "errors"),
    [
        ([("get_current_weather", {"city": "Paris"})], []),
        ([("get_weather", {"city": "Paris"})], ["unknown_function: get_weather"]),
        (
            [("get_current_weather", {"city": "Paris", "units": "c"})],
            ["unknown_argument: get_current_weather.units"],
        ),
        (
            [("get_weather_forecast", {"city": "Paris"})],
            ["missing_argument: get_weather_forecast.days"],
        ),
        (
            [("get_weather_forecast", {"city": "Paris", "days": "3"})],
            ["wrong_type: get_weather_forecast.days (expected integer)"],
        ),
    ],
)
def test_format_stage_reasons(host, calls: list, errors: list[str]) -> None:
    score = metric(host, "apigen_format").score(PARIS, outcome(*calls))
    assert score.values == {"format_pass": 0.0 if errors else 1.0}
    assert score.labels["format_errors"] == errors


def test_format_stage_fails_an_answer_that_did_not_decode(host) -> None:
    score = metric(host, "apigen_format").score(PARIS, Outcome(output="hm", calls=None))
    assert score.values == {"format_pass": 0.0}
    assert score.labels["format_errors"][0].startswith("decode_failed")


def test_format_stage_reads_openai_tools_and_toolsets_too() -> None:
    spec = get_toolset("math_tools").spec("gcd")
    calls = (ToolCall("gcd", {"a": 1, "b": 2.5}),)
    openai = {"gcd": spec["parameters"]}
    assert format_errors(calls, openai) == ["wrong_type: gcd.b (expected integer)"]


# --- stage 2 ---------------------------------------------------------------------------------


def test_execution_stage_ok_error_timeout_and_skips(host) -> None:
    execution = metric(host, "apigen_execution", timeout_s=1)
    ok = execution.score(PARIS, outcome(("get_current_weather", {"city": "Paris"})))
    assert ok.values == {"execution_pass": 1.0}
    assert ok.labels["execution_results"][0]["result"]["condition"] == "cloudy"

    error = execution.score(PARIS, outcome(("get_current_weather", {"city": "Atlantis"})))
    assert error.values == {"execution_pass": 0.0}
    assert error.labels["execution_results"][0]["kind"] == "error"

    slow = sample("s2", "What is one billion factorial?", MATH_TOOLS, "math_tools")
    timeout = execution.score(slow, outcome(("factorial", {"number": 10**9})))
    assert timeout.values == {"execution_pass": 0.0}
    assert timeout.labels["execution_results"][0]["kind"] in ("timeout", "killed")

    bad_format = execution.score(PARIS, outcome(("get_weather", {"city": "Paris"})))
    assert bad_format.values == {"execution_pass": 0.0}  # hierarchical: format failed first
    assert bad_format.labels["execution_skipped"] == "format"

    no_toolset = sample("s3", "Weather in Paris?", WEATHER_TOOLS)  # no tool set: not applicable
    skipped = execution.score(no_toolset, outcome(("get_current_weather", {"city": "Paris"})))
    assert skipped.values == {} and skipped.labels["execution_skipped"] == "no tool set"


def test_execution_stage_uses_the_metric_toolset_parameter(host) -> None:
    execution = metric(host, "apigen_execution", toolset="weather")
    plain = sample("s4", "Alerts for London?", WEATHER_TOOLS)
    score = execution.score(plain, outcome(("get_weather_alerts", {"city": "London"})))
    assert score.values == {"execution_pass": 1.0}


def test_an_unknown_toolset_parameter_fails_at_build(host) -> None:
    with pytest.raises(Exception, match="unknown tool set"):
        metric(host, "apigen_execution", toolset="nope")


# --- stage 3 ---------------------------------------------------------------------------------


class ScriptedJudge(Backend):
    """Answers from a script and keeps every prompt it saw."""

    prompts: list[str] = []
    answers: dict[str, str] = {}

    def chat(self, request):
        self.prompts.append(request.messages[-1].content)
        return ChatResponse(text=self.answers.get(request.sample_id, "no idea"))


class JudgePlugin:
    @hookimpl
    def register_backends(self, register):
        register("scripted_judge", lambda params, context: ScriptedJudge(params, context))


def test_semantic_stage_with_a_scripted_judge(host) -> None:
    host.register(JudgePlugin(), "scripted_judge")
    ScriptedJudge.prompts.clear()
    ScriptedJudge.answers.update(
        {
            "s1": '```json\n{"thought": "right call", "pass": "yes"}\n```',
            "s2": '{"thought": "wrong city", "pass": "no"}',
            "s3": "I think it is fine.",
        }
    )
    semantic = metric(host, "apigen_semantic", judge={"type": "scripted_judge"})
    good = semantic.score(PARIS, outcome(("get_current_weather", {"city": "Paris"})))
    assert good.values == {"semantic_pass": 1.0}
    assert good.labels["semantic_thought"] == "right call"
    assert good.labels["semantic_prompt_version"] == SEMANTIC_PROMPT_VERSION
    assert "pass" in good.labels["semantic_judgement"]  # the raw judgement is stored
    prompt = ScriptedJudge.prompts[-1]
    assert "What is the weather in Paris?" in prompt and "get_weather_forecast" in prompt
    assert '"condition": "cloudy"' in prompt  # execution results reach the judge

    london = sample("s2", "Weather in London?", WEATHER_TOOLS, "weather")
    wrong = semantic.score(london, outcome(("get_current_weather", {"city": "Paris"})))
    assert wrong.values == {"semantic_pass": 0.0}

    vague = sample("s3", "Weather in Tokyo?", WEATHER_TOOLS, "weather")
    unreadable = semantic.score(vague, outcome(("get_current_weather", {"city": "Tokyo"})))
    assert unreadable.values == {} and unreadable.labels["judge_error"] == "unparsable judgement"
    assert unreadable.labels["semantic_judgement"] == "I think it is fine."

    asked = len(ScriptedJudge.prompts)
    failed = semantic.score(PARIS, outcome(("get_current_weather", {"city": "Atlantis"})))
    assert failed.values == {"semantic_pass": 0.0}
    assert failed.labels["semantic_skipped"] == "execution"
    assert len(ScriptedJudge.prompts) == asked  # no judge call for a sample that failed earlier


def test_a_bad_judge_entry_is_refused_at_build(host) -> None:
    with pytest.raises(Exception, match="path"):
        metric(host, "apigen_semantic", judge={"type": "replay"})


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ('{"thought": "ok", "pass": "yes"}', (True, "ok")),
        ('Sure! {"thought": "bad", "pass": "No"} done', (False, "bad")),
        ('{"pass": true}', (True, "")),
        ('{"thought": "x"}', None),
        ('{"pass": "maybe"}', None),
        ("", None),
        ("{not json", None),
    ],
)
def test_parse_judgement(text: str, verdict: Any) -> None:
    assert parse_judgement(text) == verdict


# --- end to end: the pass rate of each stage in results.json ------------------------------


def test_stage_pass_rates_in_results(tmp_path: Path, host) -> None:
    queries = {
        "1": ("Weather in Paris?", [("get_current_weather", {"city": "Paris"})], "yes"),
        "2": ("Weather in Atlantis?", [("get_current_weather", {"city": "Atlantis"})], "yes"),
        "3": ("Weather in Rome?", [("get_weather", {"city": "Rome"})], "yes"),
        "4": (
            "Forecast for Tokyo?",
            [("get_weather_forecast", {"city": "Tokyo", "days": 2})],
            "no",
        ),
    }
    data = [
        {"id": k, "query": q, "tools": json.dumps(WEATHER_TOOLS), "answers": json.dumps([])}
        for k, (q, _, _) in queries.items()
    ]
    (tmp_path / "apigen.json").write_text(json.dumps(data))
    answers = [
        {"task": "apigen", "sample_id": k, "output": json.dumps({"tool_calls": [
            {"name": n, "arguments": a} for n, a in calls]})}
        for k, (_, calls, _) in queries.items()
    ]  # fmt: skip
    judgements = [
        {
            "task": "apigen_semantic",
            "sample_id": k,
            "output": json.dumps({"thought": "", "pass": v}),
        }
        for k, (_, _, v) in queries.items()
    ]
    write_jsonl(tmp_path / "replay.jsonl", answers)
    write_jsonl(tmp_path / "judge.jsonl", judgements)
    manifest = {
        "name": "apigen-stages",
        "backends": [{"type": "replay", "path": "replay.jsonl"}],
        "tasks": [{"type": "apigen", "path": "apigen.json"}],
        "metrics": [
            {"type": "apigen_format"},
            {"type": "apigen_execution", "toolset": "weather"},
            {
                "type": "apigen_semantic",
                "toolset": "weather",
                "judge": {"type": "replay", "path": "judge.jsonl"},
            },
        ],
    }
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    result = run_manifest(
        load_manifest(tmp_path / "m.json", host), host, tmp_path / "o", progress=False
    )
    cell = result.results["results"]["apigen"]["replay"]
    assert cell["format_pass"] == pytest.approx(3 / 4)
    assert cell["execution_pass"] == pytest.approx(2 / 4)
    assert cell["semantic_pass"] == pytest.approx(1 / 4)
    records = {
        json.loads(line)["sample_id"]: json.loads(line)
        for line in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()
    }
    assert records["3"]["format_errors"] == ["unknown_function: get_weather"]
    assert records["2"]["execution_results"][0]["kind"] == "error"
    assert json.loads(records["4"]["semantic_judgement"])["pass"] == "no"


@pytest.mark.slow
@needs_llama
def test_semantic_stage_with_a_real_local_judge(host) -> None:
    """SmolLM2 as the judge: whatever it says is stored; a verdict or a judge_error results."""
    judge = {"type": "llamacpp", "model": "smollm2-135m-instruct"}
    semantic = metric(host, "apigen_semantic", judge=judge, max_tokens=64)
    score = semantic.score(PARIS, outcome(("get_current_weather", {"city": "Paris"})))
    assert isinstance(score.labels["semantic_judgement"], str)
    assert score.values in ({"semantic_pass": 1.0}, {"semantic_pass": 0.0}) or (
        score.labels["judge_error"] == "unparsable judgement"
    )
    semantic.close()
