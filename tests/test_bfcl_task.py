"""The bfcl task end to end on BFCL's real data, with replayed outputs in both modes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from bfcl_perturb import ground_truth_calls
from conftest import run_harness
from conftest import write_jsonl

pytest.importorskip("bfcl_eval", reason="BFCL data: pip install --no-deps bfcl-eval==2026.3.23")

from harness_plugins.bfcl import _data as data

AST = list(data.AST_CATEGORIES)
#: BFCL entries that no answer can pass (required parameters without accepted values, or ground
#: truth using undeclared parameters); found by the parity work, see docs/bfcl.md.
UNPASSABLE = {
    "live_simple_106-63-0",
    "live_simple_112-68-0",
    "live_multiple_507-149-4",
    "live_multiple_862-181-3",
    "live_multiple_964-207-0",
}


def python_text(calls: list[dict]) -> str:
    """Ground-truth calls written the way BFCL's prompt asks: [f(a=1, b='x')]."""
    parts = []
    for call in calls:
        ((name, args),) = call.items()
        parts.append(f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")")
    return "[" + ", ".join(parts) + "]"


def replay_lines(categories: list[str], native: bool) -> list[dict]:
    lines = []
    for category in categories:
        for entry, truth in data.entries(category):
            line = {"task": "bfcl", "sample_id": entry["id"]}
            if truth is None:
                relevant = category == "live_relevance"
                first = entry["function"][0]["name"] if relevant else None
                calls = [{first: {}}] if relevant else None
            else:
                calls = ground_truth_calls(truth, entry["function"])
            if native:
                line["tool_calls"] = [
                    {"name": re.sub(r"\.", "_", n), "arguments": json.dumps(a)}
                    for c in calls or []
                    for n, a in c.items()
                ]
            else:
                line["output"] = python_text(calls) if calls else "None of the functions apply."
            lines.append(line)
    return lines


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prompt", "native"])
def test_replayed_ground_truth_scores_as_bfcl_would(tmp_path: Path, write_manifest, mode: str):
    categories = list(data.CATEGORIES)
    replay = write_jsonl(tmp_path / "replay.jsonl", replay_lines(categories, mode != "prompt"))
    manifest = write_manifest(
        {
            "name": "bfcl-replay",
            "backends": [{"type": "replay", "path": str(replay)}],
            "tasks": [{"type": "bfcl", "categories": categories, "mode": mode}],
        }
    )
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    records = [json.loads(x) for x in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    assert len(records) == sum(data.count(c) for c in categories)
    failed = {r["sample_id"] for r in records if r["scores"]["accuracy"] != 1.0}
    assert failed == UNPASSABLE, sorted(failed - UNPASSABLE)[:5]
    assert all(r["mode"] == mode and r["subtask"] for r in records)
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    subtasks = results["subtasks"]["bfcl"]
    assert set(subtasks) == set(categories)
    assert subtasks["simple_python"]["replay"]["accuracy"] == 1.0
    groups = results["groups"]["bfcl"]
    assert set(groups) == {"non_live", "live", "irrelevance", "overall:non_live+live+irrelevance"}
    live_n = {
        c: subtasks[c]["replay"]["accuracy_n"]
        for c in categories
        if c.startswith("live_") and c in data.AST_CATEGORIES
    }
    live = sum(subtasks[c]["replay"]["accuracy"] * n for c, n in live_n.items()) / sum(
        live_n.values()
    )
    assert groups["live"]["replay"]["accuracy"] == pytest.approx(live)
    assert "simple_python" in result.stdout and "[live]" in result.stdout
    assert "bfcl-eval 2026.3.23" in (tmp_path / "o" / "manifest.json").read_text()


def test_wrong_answers_and_prose_score_zero_with_bfcl_error_types(tmp_path: Path, write_manifest):
    entries = list(data.entries("simple_python"))[:3]
    outputs = ["I think the area is 25.", "[wrong_function(x=1)]", "[" + "calculate(" * 3]
    lines = [
        {"task": "bfcl", "sample_id": e["id"], "output": o}
        for (e, _), o in zip(entries, outputs, strict=True)
    ]
    irrelevant = next(data.entries("irrelevance"))[0]
    name = irrelevant["function"][0]["name"]
    lines.append({"task": "bfcl", "sample_id": irrelevant["id"], "output": f"[{name}(x=1)]"})
    replay = write_jsonl(tmp_path / "replay.jsonl", lines)
    manifest = write_manifest(
        {
            "name": "bfcl-wrong",
            "backends": [{"type": "replay", "path": str(replay)}],
            "tasks": [{"type": "bfcl", "categories": ["simple_python", "irrelevance"], "limit": 3}],
        }
    )
    assert run_harness("run", str(manifest), "--out", str(tmp_path / "o")).returncode == 0
    records = {
        json.loads(x)["sample_id"]: json.loads(x)
        for x in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()
    }
    types = [records[e["id"]]["error_type"] for e, _ in entries]
    assert types == [
        "ast_decoder:decoder_failed",
        "simple_function_checker:wrong_func_name",
        "ast_decoder:decoder_failed",
    ]
    assert records[entries[0][0]["id"]]["decode_error"].startswith("syntax")
    assert records[irrelevant["id"]]["error_type"] == "irrelevance_error:decoder_success"
    missing = [r for r in records.values() if r["error"]]
    assert len(missing) == 2  # irrelevance entries 1 and 2 have no replay line: errors, not 0s
    assert all(r["scores"]["accuracy"] == 0.0 for r in records.values() if not r["error"])


def test_prompt_is_bfcls_default_system_prompt() -> None:
    from harness_plugins.bfcl._prompt import prompt_messages

    entry = next(data.entries("simple_python"))[0]
    messages = prompt_messages(entry["question"][0], entry["function"])
    system = messages[0]["content"]
    assert messages[0]["role"] == "system" and messages[1] == entry["question"][0][0]
    assert system.startswith("You are an expert in composing functions.You are given a question")
    assert "[func_name1(params_name1=params_value1, params_name2=params_value2...), " in system
    assert "Note that the provided function is in Python 3 syntax." in system
    assert json.dumps(entry["function"][0]["name"]) in system


def test_bfcl_validate_rejects_unknown_category(tmp_path: Path, write_manifest) -> None:
    manifest = write_manifest(
        {
            "name": "x",
            "backends": [{"type": "replay", "path": str(write_jsonl(tmp_path / "r.jsonl", []))}],
            "tasks": [{"type": "bfcl", "categories": ["simple_pyhton"]}],
        }
    )
    result = run_harness("validate", str(manifest))
    assert result.returncode == 2 and "tasks[0].categories[0]" in result.stderr


def test_compare_labels_columns_with_the_mode(tmp_path: Path, write_manifest) -> None:
    categories = ["simple_python"]
    for mode in ("prompt", "native"):
        lines = replay_lines(categories, native=mode == "native")[:5]
        replay = write_jsonl(tmp_path / f"{mode}.jsonl", lines)
        manifest = write_manifest(
            {
                "name": mode,
                "backends": [{"type": "replay", "path": str(replay)}],
                "tasks": [{"type": "bfcl", "categories": categories, "mode": mode, "limit": 5}],
            },
            f"{mode}.yaml",
        )
        assert run_harness("run", str(manifest), "--out", str(tmp_path / mode)).returncode == 0
    result = run_harness("compare", str(tmp_path / "prompt"), str(tmp_path / "native"))
    assert result.returncode == 0, result.stderr
    assert "prompt/replay (prompt)" in result.stdout and "native/replay (native)" in result.stdout


def test_a_model_gets_bfcls_system_prompt_and_a_lookup_backend_only_the_question(
    tmp_path: Path,
) -> None:
    """Prompt mode: a model's request starts with BFCL's system prompt; a backend that answers
    by sample id (replay) is not sent it (it never reads it)."""
    from harness_plugins.bfcl import BFCLTaskParams
    from harness_plugins.bfcl._prompt import prompt_messages
    from harness_plugins.bfcl._task import BFCLTask

    from harness import BuildContext
    from harness import ChatResponse

    class Spy:
        def __init__(self, capabilities: frozenset[str]) -> None:
            self.capabilities, self.requests = capabilities, []

        def chat(self, request):
            self.requests.append(request)
            return ChatResponse(text="[f(x=1)]")

    task = BFCLTask(BFCLTaskParams(limit=2), BuildContext("bfcl", tmp_path))
    model, replay = Spy(frozenset()), Spy(frozenset({"sample_lookup"}))
    for sample in task.samples():
        entry = next(e for e, _ in data.entries("simple_python") if e["id"] == sample.id)
        expected = prompt_messages(entry["question"][0], entry["function"])
        for backend in (model, replay):
            outcome = task.play(sample, backend)
            assert outcome.calls[0].name == "f"
        sent = model.requests[-1]
        assert [m.to_dict() for m in sent.messages] == expected
        assert task.request(sample).messages == sent.messages  # rendered once, reused
        assert [m.to_dict() for m in replay.requests[-1].messages] == entry["question"][0]
        assert replay.requests[-1].sample_id == sample.id == sent.sample_id


@pytest.mark.slow
def test_rescoring_many_backends_scores_each_as_if_alone(tmp_path: Path, write_manifest):
    """Samples are built once and shared by every backend of a run: the shared samples must
    come out of each backend's scoring unchanged, so a backend scores in a crowd as it does
    alone, and the report's error-type counts (tallied as records are written, across a
    resume) equal those read back from samples.jsonl."""
    from harness_plugins.bfcl._report import error_type_counts
    from harness_plugins.bfcl._report import error_type_table

    categories = ["simple_python", "multiple", "irrelevance"]
    truth = {line["sample_id"]: line for line in replay_lines(categories, native=False)}
    wrong = [dict(line, output="[" + line["sample_id"] + "]") for line in truth.values()]
    replays = {
        "right": write_jsonl(tmp_path / "right.jsonl", list(truth.values())),
        "wrong": write_jsonl(tmp_path / "wrong.jsonl", wrong),
    }

    def run(backends: list[str], out: str, limit: int | None = None) -> list[dict]:
        doc = {
            "name": "rescore",
            "backends": [{"type": "replay", "id": b, "path": str(replays[b])} for b in backends],
            "tasks": [{"type": "bfcl", "categories": categories, "limit": 10}],
            "run": {"limit": limit},
        }
        manifest = write_manifest(doc, name=f"{out}.yaml")
        assert run_harness("run", str(manifest), "--out", str(tmp_path / out)).returncode == 0
        lines = (tmp_path / out / "samples.jsonl").read_text().splitlines()
        return [json.loads(x) for x in lines]

    def verdicts(records: list[dict], backend: str) -> dict:
        return {
            r["sample_id"]: (r["scores"], r["error_type"])
            for r in records
            if r["backend"] == backend
        }

    alone = {b: verdicts(run([b], f"alone-{b}"), b) for b in replays}
    run(["wrong", "right"], "crowd", limit=12)  # the first 12 samples of each unit
    crowd = run(["wrong", "right"], "crowd")  # resumes
    assert {b: verdicts(crowd, b) for b in replays} == alone
    assert {scores["accuracy"] for scores, _ in alone["right"].values()} == {1.0}
    assert {scores["accuracy"] for scores, _ in alone["wrong"].values()} == {0.0, 1.0}
    page = (tmp_path / "crowd" / "report.html").read_text()
    assert error_type_table(error_type_counts(crowd)).to_html() in page
