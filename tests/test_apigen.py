"""The apigen task on a small file written in the xlam-function-calling-60k record format."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_harness
from conftest import write_jsonl

TOOLS = [
    {
        "name": "live_giveaways_by_type",
        "description": "Retrieve live giveaways by type.",
        "parameters": {
            "type": {"description": "beta, game or loot.", "type": "str", "default": "game"}
        },
    },
    {
        "name": "convert",
        "description": "Convert an amount between currencies.",
        "parameters": {
            "amount": {"description": "Amount.", "type": "float", "default": ""},
            "to": {"description": "Target currencies.", "type": "List[str]", "default": ""},
            "round": {"description": "Digits.", "type": "int, optional", "default": "2"},
        },
    },
]
RECORDS = [
    {"id": 1, "query": "Where can I find live giveaways for beta access and games?",
     "answers": [{"name": "live_giveaways_by_type", "arguments": {"type": "beta"}},
                 {"name": "live_giveaways_by_type", "arguments": {"type": "game"}}]},
    {"id": 2, "query": "Convert 12.5 to EUR and GBP.",
     "answers": [{"name": "convert", "arguments": {"amount": 12.5, "to": ["EUR", "GBP"]}}]},
    {"id": 3, "query": "Convert 3 to JPY.",
     "answers": [{"name": "convert", "arguments": {"amount": 3, "to": ["JPY"]}}]},
    {"id": 4, "query": "Convert 7 to USD.",
     "answers": [{"name": "convert", "arguments": {"amount": 7, "to": ["USD"]}}]},
    {"id": 5, "query": "Convert 9 to CHF.",
     "answers": [{"name": "convert", "arguments": {"amount": 9, "to": ["CHF"]}}]},
]  # fmt: skip


def xlam(calls: list[dict]) -> str:
    return json.dumps({"thought": "", "tool_calls": calls})


def test_apigen_prompt_mode_scores_and_labels(tmp_path: Path, write_manifest) -> None:
    data = [{**r, "tools": json.dumps(TOOLS), "answers": json.dumps(r["answers"])} for r in RECORDS]
    (tmp_path / "apigen.json").write_text(json.dumps(data))
    outputs = {
        "1": xlam(list(reversed(RECORDS[0]["answers"]))),  # order does not matter
        "2": xlam([{"name": "convert", "arguments": {"amount": 12.5, "to": ["EUR", "GBP"],
                                                     "round": 2}}]),  # default value given: ok
        "3": xlam([{"name": "convert", "arguments": {"amount": 3.0, "to": ["JPY"], "round": 5}}]),
        "4": "I would convert it for you.",
        "5": xlam([{"name": "convert", "arguments": {"amount": 9, "to": ["CHF"], "fee": 1}}]),
    }  # fmt: skip
    replay = write_jsonl(
        tmp_path / "replay.jsonl",
        [{"task": "apigen", "sample_id": k, "output": v} for k, v in outputs.items()],
    )
    manifest = write_manifest(
        {
            "name": "apigen",
            "backends": [{"type": "replay", "path": str(replay)}],
            "tasks": [{"type": "apigen", "path": "apigen.json"}],
        }
    )
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    records = {
        json.loads(x)["sample_id"]: json.loads(x)
        for x in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()
    }
    verdicts = {k: (r["scores"]["accuracy"], r["error_type"]) for k, r in records.items()}
    assert verdicts == {
        "1": (1.0, ""),
        "2": (1.0, ""),
        "3": (0.0, "value_error"),
        "4": (0.0, "decoder_failed"),
        "5": (0.0, "unexpected_param"),
    }


def test_apigen_native_tools_are_json_schema(tmp_path: Path) -> None:
    from harness_plugins.apigen import openai_tool

    tool = openai_tool(TOOLS[1])["function"]
    assert tool["parameters"]["required"] == ["amount", "to"]
    assert tool["parameters"]["properties"]["to"]["type"] == "array"
    assert tool["parameters"]["properties"]["round"]["type"] == "integer"


def test_apigen_bad_file_is_a_clear_error(tmp_path: Path, write_manifest) -> None:
    write_jsonl(tmp_path / "bad.jsonl", [{"query": "x", "tools": "[]"}])
    replay = write_jsonl(tmp_path / "r.jsonl", [])
    manifest = write_manifest(
        {
            "name": "bad",
            "backends": [{"type": "replay", "path": str(replay)}],
            "tasks": [{"type": "apigen", "path": "bad.jsonl"}],
        }
    )
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"))
    assert result.returncode in (1, 2) and "missing field 'answers'" in result.stderr
    assert "Traceback" not in result.stderr
