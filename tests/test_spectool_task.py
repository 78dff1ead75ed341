"""The spectool probe task: deterministic probes, multi-step episodes, feedback, sandboxed calls."""

from __future__ import annotations

import json
import time
import types
from pathlib import Path

import pytest
from conftest import needs_llama

from harness import Backend
from harness import ChatResponse
from harness import ToolCall
from harness import hookimpl
from harness._manifest import load_manifest
from harness._run import run_manifest
from harness._store import iter_records

pytest.importorskip("bfcl_eval", reason="BFCL data: pip install --no-deps bfcl-eval==2026.3.23")

from harness_plugins.spectool._probes import AUGMENTATIONS
from harness_plugins.spectool._probes import apigen_seeds
from harness_plugins.spectool._probes import augment
from harness_plugins.spectool._probes import bfcl_seeds

PROBES = {p.id: p for p in augment(bfcl_seeds() + apigen_seeds(), AUGMENTATIONS)}


def _observations(request) -> list[str]:
    return [m.content for m in request.messages if (m.content or "").startswith("Observation:")]


class Oracle(Backend):
    """Calls exactly the expected functions, then finishes."""

    max_concurrency = 4

    def chat(self, request):
        if _observations(request):
            return ChatResponse(text=None, tool_calls=(ToolCall("finish", {"answer": "done"}),))
        calls = PROBES[request.sample_id].expected
        return ChatResponse(
            text=None, tool_calls=tuple(ToolCall(c["name"], c["arguments"]) for c in calls)
        )


class Sloppy(Backend):
    """First invents a function name; corrects itself only when the validator says so."""

    def chat(self, request):
        seen = _observations(request)
        if not seen:
            return ChatResponse(text=None, tool_calls=(ToolCall("get_weather", {"city": "Paris"}),))
        if "unknown function" in seen[-1] and len(seen) == 1:
            calls = PROBES[request.sample_id].expected
            return ChatResponse(
                text=None, tool_calls=tuple(ToolCall(c["name"], c["arguments"]) for c in calls)
            )
        return ChatResponse(text=None, tool_calls=(ToolCall("finish", {"answer": "done"}),))


@pytest.fixture
def scripted(host):
    def register_backends(register):
        register("oracle", lambda params, context: Oracle(params, context))
        register("sloppy", lambda params, context: Sloppy(params, context))

    host.register(types.SimpleNamespace(register_backends=hookimpl(register_backends)), "scripted")
    return host


def run(host, tmp_path: Path, backend: str, **task) -> list[dict]:
    manifest = {
        "name": "probes",
        "backends": [{"type": backend}],
        "tasks": [{"type": "spectool", **task}],
    }
    path = tmp_path / f"{backend}.json"
    path.write_text(json.dumps(manifest))
    out = tmp_path / f"out-{backend}-{task.get('feedback', True)}"
    run_manifest(load_manifest(path, host), host, out, progress=False)
    return list(iter_records(out / "samples.jsonl"))


def test_probes_are_deterministic_and_cover_every_augmentation() -> None:
    again = [p.id for p in augment(bfcl_seeds() + apigen_seeds(), AUGMENTATIONS)]
    assert again == list(PROBES)
    kinds = {p.augmentation for p in PROBES.values()}
    assert kinds == set(AUGMENTATIONS)
    assert any(p.source.startswith("bfcl:") for p in PROBES.values())
    assert any(p.source.startswith("spectool-seeds") for p in PROBES.values())
    assert all(len(p.expected) >= 2 for p in PROBES.values() if p.augmentation == "multi_call")


def test_oracle_succeeds_with_sandboxed_results_and_no_patterns(scripted, tmp_path: Path) -> None:
    records = run(scripted, tmp_path, "oracle", limit=12)
    assert len(records) == 12
    for rec in records:
        assert rec["scores"]["success"] == 1.0, rec["sample_id"]
        assert rec["patterns"] == []
        executed = [s for s in rec["trajectory"] if s["executed"]]
        assert executed and all(not str(s["observation"]).startswith("ERROR") for s in executed)
    factorial = next(r for r in records if r["sample_id"] == "bfcl:simple_python_1")
    assert factorial["trajectory"][0]["observation"] == {"result": 120} or "120" in json.dumps(
        factorial["trajectory"][0]["observation"]
    )


def test_feedback_lets_a_sloppy_model_recover(scripted, tmp_path: Path) -> None:
    weather = ["weather"]
    on = run(scripted, tmp_path, "sloppy", toolsets=weather, limit=4, feedback=True)
    off = run(scripted, tmp_path, "sloppy", toolsets=weather, limit=4, feedback=False)
    assert all(r["scores"]["success"] == 1.0 for r in on)
    assert all("IFN" in r["patterns"] for r in on)
    assert all(r["scores"]["success"] == 0.0 for r in off)
    assert all({"IFN", "IAC"} <= set(r["patterns"]) for r in off)
    assert all(r["trajectory"][0]["executed"] is False for r in off)  # the sandbox refused it


def test_probe_suite_on_the_replay_backend(host, tmp_path: Path) -> None:
    """Recorded answers (the expected calls and finish in one turn) replay through episodes."""
    lines = []
    for probe in list(PROBES.values())[:30]:
        calls = [*probe.expected, {"name": "finish", "arguments": {"answer": "done"}}]
        lines.append(
            {
                "task": "spectool",
                "sample_id": probe.id,
                "tool_calls": [
                    {"name": c["name"], "arguments": json.dumps(c["arguments"])} for c in calls
                ],
            }
        )
    replay = tmp_path / "replay.jsonl"
    replay.write_text("".join(json.dumps(x) + "\n" for x in lines))
    manifest = {
        "name": "replayed",
        "backends": [{"type": "replay", "path": str(replay)}],
        "tasks": [{"type": "spectool", "limit": 30}],
    }
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    result = run_manifest(load_manifest(tmp_path / "m.json", host), host, tmp_path / "o", False)
    cell = result.results["results"]["spectool"]["replay"]
    assert cell["success"] == 1.0 and cell["n_samples"] == 30 and cell["n_errors"] == 0
    records = list(iter_records(tmp_path / "o" / "samples.jsonl"))
    assert all(r["patterns"] == [] and r["mode"] == "native" for r in records)


@pytest.mark.slow
@needs_llama
@pytest.mark.parametrize("mode", ["constrained", "prompt"])
def test_probe_suite_on_smollm2(host, tmp_path: Path, mode: str) -> None:
    """The embedded model plays real episodes: steps are taken, calls run in the sandbox (or
    fail to decode), and every failed probe gets SpecTool patterns."""
    manifest = {
        "name": "probes-smollm2",
        "backends": [{"type": "llamacpp", "model": "smollm2-135m-instruct", "max_tokens": 64}],
        "tasks": [
            {
                "type": "spectool",
                "mode": mode,
                "limit": 2,
                "max_steps": 2,
                "max_tokens": 64,
                "toolsets": ["weather"],
                "deadline_s": 1200,  # a loaded CI machine must not turn this into a deadline test
            }
        ],
    }
    (tmp_path / "m.json").write_text(json.dumps(manifest))
    run_manifest(load_manifest(tmp_path / "m.json", host), host, tmp_path / "o", False)
    records = list(iter_records(tmp_path / "o" / "samples.jsonl"))
    assert len(records) == 2 and not any(r["error"] for r in records)
    for rec in records:
        assert rec["trajectory"] and rec["timing"]["output_tokens"] > 0
        assert not rec.get("deadline")
        assert rec["scores"]["success"] == 1.0 or rec["patterns"]


class Flood(Backend):
    """Answers every turn with 20 calls of the expected first function, slowly."""

    def chat(self, request):
        time.sleep(0.2)
        first = PROBES[request.sample_id].expected[0]
        return ChatResponse(
            text=None, tool_calls=(ToolCall(first["name"], first["arguments"]),) * 20
        )


def test_calls_per_turn_are_capped_and_episodes_have_a_deadline(host, tmp_path: Path) -> None:
    """One sample used to run for 62 s: no cap on calls per step outside constrained mode."""

    def register_backends(register):
        register("flood", lambda params, context: Flood(params, context))

    host.register(types.SimpleNamespace(register_backends=hookimpl(register_backends)), "flood")
    (record,) = run(
        host, tmp_path, "flood", limit=1, max_calls_per_step=2, deadline_s=0.5, max_steps=20
    )
    steps = record["trajectory"]
    turns = [
        s for s in steps if s["observation"] == "ERROR | 20 calls in one turn; only the first 2 ran"
    ]
    assert turns and all(len(s["calls"]) == 18 for s in turns)
    ran = [s for s in steps if s["calls"] and len(s["calls"]) == 1]
    assert len(ran) == 2 * len(turns)  # two calls ran per turn
    assert record["deadline"] is True and len(turns) < 20  # stopped by the deadline, not max_steps
