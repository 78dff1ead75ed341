"""The two engines of the ``llamacpp`` backend: xllamacpp (prebuilt wheels, the default) and
llama-cpp-python (built from source). Same prompts, same grammar, same answers; the engine and
its version are part of the experiment a resume compares."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ENGINES
from conftest import needs_both_engines
from harness_plugins.bfcl import _data as bfcl_data
from harness_plugins.llamacpp import LlamaCppParams
from harness_plugins.llamacpp import _common as common
from harness_plugins.llamacpp._engines import build
from harness_plugins.llamacpp._engines import resolve
from harness_plugins.llamacpp._gbnf import json_schema_to_gbnf
from harness_plugins.llamacpp._xengine import cpu_problem
from test_llamacpp import WEATHER

from harness import BuildContext
from harness import ChatRequest
from harness import GenerationParams
from harness import Message
from harness._experiment import files


def test_cpu_check_names_the_missing_instruction_sets(tmp_path: Path) -> None:
    haswell = tmp_path / "haswell"
    haswell.write_text("processor: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c bmi1 bmi2\n")
    sandy = tmp_path / "sandy"
    sandy.write_text("processor: 0\nflags\t\t: fpu sse2 avx\n")
    assert cpu_problem(haswell) is None
    problem = cpu_problem(sandy)
    assert problem and "AVX2, FMA, F16C, BMI2" in problem and "llama-cpp-python" in problem
    assert cpu_problem(tmp_path / "not-linux") is None


def test_auto_prefers_the_prebuilt_engine() -> None:
    assert resolve("llama-cpp-python") == "llama-cpp-python"
    assert resolve("auto") == ("xllamacpp" if "xllamacpp" in ENGINES else "llama-cpp-python")


def test_the_engine_and_its_version_are_part_of_the_experiment() -> None:
    one = {"backends": {"m": {"runtime": "xllamacpp", "runtime_version": "1", "model_sha256": "a"}}}
    two = {"backends": {"m": {"runtime": "llama-cpp-python", "runtime_version": "0.3"}}}
    assert files(one)["models"]["m"] == {
        "runtime": "xllamacpp",
        "runtime_version": "1",
        "model_sha256": "a",
    }
    assert files(one) != files(two)


def _bfcl_schemas() -> list[dict]:
    schemas = []
    for category in bfcl_data.AST_CATEGORIES:
        for entry, _ in bfcl_data.entries(category):
            tools = [{"type": "function", "function": f} for f in entry["function"]]
            schemas.append(common.calls_schema(tools, "auto", 8, lambda s: True))
    return schemas


@pytest.mark.skipif("llama-cpp-python" not in ENGINES, reason="llama-cpp-python not installed")
def test_the_vendored_converter_writes_llama_cpp_pythons_grammar() -> None:
    """Every BFCL AST item's call-list schema converts to the very same GBNF text."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf as original

    schemas = _bfcl_schemas()
    assert len(schemas) > 1000
    for schema in schemas:
        text = json.dumps(schema)
        try:
            expected = original(text)
        except Exception as exc:
            with pytest.raises(type(exc)):
                json_schema_to_gbnf(text)
            continue
        assert json_schema_to_gbnf(text) == expected


REQUESTS = [
    ChatRequest(messages=(Message("user", "What is the capital of France?"),)),
    ChatRequest(
        messages=(Message("system", "Answer briefly."), Message("user", "Name three colors.")),
        params=GenerationParams(max_tokens=12, stop=(",",)),
    ),
    ChatRequest(
        messages=(Message("user", "What's the weather in Paris in celsius?"),),
        tools=(WEATHER,),
        mode="constrained",
        tool_choice="auto",
    ),
    ChatRequest(
        messages=(Message("user", "Weather in Oslo and in Rome?"),),
        tools=(WEATHER,),
        mode="constrained",
        tool_choice="required",
    ),
    ChatRequest(
        messages=(Message("user", "What's the weather in Paris?"),),
        tools=(WEATHER,),
        mode="native",
        tool_choice="auto",
        params=GenerationParams(max_tokens=48),
    ),
    ChatRequest(
        messages=(Message("user", "Tell me a joke."),),
        tools=(WEATHER,),
        mode="native",
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        params=GenerationParams(max_tokens=48),
    ),
]


@pytest.mark.slow
@needs_both_engines
def test_both_engines_give_the_same_answers() -> None:
    """Greedy answers, calls and token counts match across engines, mode by mode."""
    answers = {}
    for engine in ENGINES:
        params = LlamaCppParams(
            model="smollm2-135m-instruct", n_ctx=2048, engine=engine, max_tokens=48
        )
        backend = build(params, BuildContext(id="m", base_dir=Path.cwd(), seed=0))
        try:
            answers[engine] = [backend.chat(r) for r in REQUESTS]
            answers[engine].append(backend.complete("The capital of Italy is", REQUESTS[0]))
            assert backend.info()["runtime"] == engine
        finally:
            backend.close()
    x, y = answers["xllamacpp"], answers["llama-cpp-python"]
    for i, (a, b) in enumerate(zip(x, y, strict=True)):
        assert a.text == b.text, (i, a.text, b.text)
        assert a.tool_calls == b.tool_calls, i
        assert a.finish_reason == b.finish_reason, i
        if REQUESTS[min(i, len(REQUESTS) - 1)].mode != "native" or i == len(REQUESTS):
            # native mode reports each engine's own usage of its completions
            assert (a.input_tokens, a.output_tokens) == (b.input_tokens, b.output_tokens), i
    assert x[2].tool_calls and x[3].tool_calls and x[5].tool_calls  # calls were made
    for response in (x[0], x[2]):  # streamed: the clock was read at the first token
        assert response.timing["ttft_s"] > 0 and response.timing["decode_tok_s"] > 0
        assert response.timing["engine_prefill_tokens"] == response.input_tokens
