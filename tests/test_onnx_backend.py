"""The ``onnx`` backend on a tiny causal LM built here with ``onnx``'s helpers (no torch, no
download): the cache, sampling, the chat template, constrained calls, timings, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_harness
from conftest import write_jsonl

pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e .[onnx]")
pytest.importorskip("tokenizers", reason="the onnx extra: pip install -e .[onnx]")
pytest.importorskip("onnx", reason="builds the tiny test model: pip install onnx")

from harness_plugins.onnx import OnnxParams
from harness_plugins.onnx._backend import OnnxBackend
from harness_plugins.onnx._decode import sampler
from harness_plugins.onnx._tiny import make_tiny_model_folder

from harness import BuildContext
from harness import ChatRequest
from harness import GenerationParams
from harness import Message

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "maxLength": 4}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model_folder(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="module")
def backend(tiny: Path) -> OnnxBackend:
    built = OnnxBackend(OnnxParams(model=str(tiny), threads=1), BuildContext("tiny", tiny.parent))
    yield built
    built.close()


def ask(text: str, **params: object) -> ChatRequest:
    return ChatRequest(messages=(Message("user", text),), params=GenerationParams(**params))


def test_cached_and_uncached_generation_give_the_same_tokens(backend: OnnxBackend) -> None:
    prompt = backend.template.encode([Message("user", "What is the capital of France?")], None)
    greedy = sampler(0, 1.0, 0, 0)
    loop = backend._loop()
    cached = loop.generate(prompt, 40, greedy, set())
    uncached = loop.generate(prompt, 40, greedy, set(), use_cache=False)
    assert cached.ids == uncached.ids and len(cached.ids) == 40
    assert len(set(cached.ids)) > 3  # not a degenerate repeat: the cache is really exercised


def test_the_cache_changes_the_next_token_distribution(backend: OnnxBackend) -> None:
    """A model that ignored its past would pass the test above trivially."""
    decoder = backend._loop()
    prompt = backend.template.encode([Message("user", "Hello")], None)
    _, cache = decoder.step(prompt, None, 0)
    with_past, _ = decoder.step([5], cache, len(prompt))
    without, _ = decoder.step([5], None, 0)
    assert abs(with_past[-1] - without[-1]).max() > 1e-3


@pytest.mark.parametrize("engine", ["loop", "genai"])
def test_both_engines_generate_the_same_greedy_tokens(tiny: Path, engine: str) -> None:
    """onnxruntime-genai's generator (the default when installed) and our loop agree."""
    if engine == "genai":
        pytest.importorskip("onnxruntime_genai", reason="the genai engine")
    params = OnnxParams(model=str(tiny), threads=1, engine=engine, warmup=0)
    built = OnnxBackend(params, BuildContext("tiny", tiny.parent))
    text = built.chat(ask("What is the capital of France?", max_tokens=24)).text
    reference = OnnxBackend(
        OnnxParams(model=str(tiny), threads=1, engine="loop", warmup=0),
        BuildContext("tiny", tiny.parent),
    )
    assert text == reference.chat(ask("What is the capital of France?", max_tokens=24)).text
    assert built.info()["engine"] == engine


def test_greedy_is_deterministic_and_seeded_sampling_repeats_per_seed(
    backend: OnnxBackend,
) -> None:
    first = backend.chat(ask("Hi", max_tokens=12))
    assert backend.chat(ask("Hi", max_tokens=12)).text == first.text
    a = backend.chat(ask("Hi", max_tokens=12, temperature=1.0, seed=1)).text
    b = backend.chat(ask("Hi", max_tokens=12, temperature=1.0, seed=1)).text
    c = backend.chat(ask("Hi", max_tokens=12, temperature=1.0, seed=2)).text
    assert a == b and a != c


def test_responses_carry_the_local_backends_timings(backend: OnnxBackend) -> None:
    response = backend.chat(ask("Tell me a story.", max_tokens=16))
    assert response.output_tokens == 16 and response.finish_reason == "length"
    timing = response.timing
    assert {"total_s", "cpu_s", "ttft_s", "prefill_tok_s", "decode_tok_s"} <= set(timing)
    assert 0 < timing["ttft_s"] < timing["total_s"]
    assert timing["decode_tok_s"] == pytest.approx(
        15 / (timing["total_s"] - timing["ttft_s"]), 0.05
    )


def test_the_prompt_is_the_folders_chat_template(backend: OnnxBackend) -> None:
    text = backend.template.render([Message("system", "Be brief."), Message("user", "Hi")])
    assert text == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n" + (
        "<|im_start|>assistant\n"
    )
    ids = backend.template.encode([Message("user", "Hi")], None)
    assert ids[0] == backend.tokenizer.token_to_id("<|im_start|>")  # a special token, not bytes
    assert backend.template.stop_ids == {2}


def test_constrained_mode_always_returns_a_well_formed_call(backend: OnnxBackend) -> None:
    """A random model cannot write a call by itself; the grammar makes every answer one."""
    pytest.importorskip("onnxruntime_genai", reason="constrained mode needs onnxruntime-genai")
    request = ChatRequest(
        messages=(Message("user", "Weather in Paris?"),),
        tools=(WEATHER,),
        tool_choice="auto",
        mode="constrained",
        params=GenerationParams(max_tokens=600),
    )
    response = backend.chat(request)
    calls = json.loads(response.text)
    assert isinstance(calls, list) and len(calls) <= 8
    assert all(
        c["name"] == "get_weather" and isinstance(c["arguments"]["city"], str) for c in calls
    )
    assert [c.name for c in response.tool_calls] == [c["name"] for c in calls]


def test_a_run_on_the_onnx_backend_records_timings_and_provenance(
    tiny: Path, tmp_path: Path, write_manifest
) -> None:
    qa = write_jsonl(
        tmp_path / "qa.jsonl",
        [{"id": f"q{i}", "question": f"q{i}?", "answer": "x"} for i in range(3)],
    )
    manifest = write_manifest(
        {
            "name": "tiny",
            "backends": [{"type": "onnx", "model": str(tiny), "max_tokens": 8, "threads": 1}],
            "tasks": [{"type": "qa", "path": str(qa)}],
            "metrics": [{"type": "efficiency"}],
        }
    )
    done = run_harness("run", str(manifest), "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    records = [json.loads(x) for x in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 3 and all(r["timing"]["output_tokens"] == 8 for r in records)
    assert all(r["scores"]["decode_tok_s"] > 0 for r in records)
    info = json.loads((tmp_path / "run" / "manifest.json").read_text())["backends"]["onnx"]
    assert info["runtime"] == "onnxruntime" and len(info["model_sha256"]) == 64


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "ONNX Runtime cannot load it"),
        ("no_tokenizer", "tokenizer.json: missing"),
        ("empty", "not a model"),
    ],
)
def test_a_bad_model_folder_stops_the_run_before_it_starts(
    tiny: Path, tmp_path: Path, write_manifest, damage: str, message: str
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in tiny.iterdir():
        if not (damage == "no_tokenizer" and item.name == "tokenizer.json"):
            (broken / item.name).write_bytes(item.read_bytes())
    model = broken / "model.onnx"
    if damage == "truncate":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif damage == "empty":
        model.write_bytes(b"")
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"id": "q", "question": "q?", "answer": "x"}])
    manifest = write_manifest(
        {
            "name": "broken",
            "backends": [{"type": "onnx", "model": str(broken)}],
            "tasks": [{"type": "qa", "path": str(qa)}],
        }
    )
    done = run_harness("run", str(manifest), "--out", str(tmp_path / "run"))
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and str(broken) in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert (
        not (tmp_path / "run" / "samples.jsonl").exists()
        or not (tmp_path / "run" / "samples.jsonl").read_text()
    )


def test_constrained_schemas_close_objects_as_llama_cpp_does() -> None:
    from harness_plugins.onnx._backend import closed

    tool = {
        "type": "object",
        "properties": {
            "properties": {"type": "object", "properties": {"a": {"type": "string"}}},
            "choice": {"enum": [{"properties": {}}]},
        },
    }
    out = closed(tool)
    assert out["additionalProperties"] is False
    assert out["properties"]["properties"]["additionalProperties"] is False
    assert "additionalProperties" not in out["properties"]  # a parameter map, not a schema
    assert out["properties"]["choice"] == {"enum": [{"properties": {}}]}  # values untouched
    assert closed({"type": "object", "additionalProperties": True}) == {
        "type": "object",
        "additionalProperties": True,
    }
