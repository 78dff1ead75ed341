"""The format-sensitivity probe: BFCL's 26 prompt configurations and its native tools byte for
byte against BFCL's own code, decoders that read every return format as BFCL does, replayed
ground truth under every configuration, the generic analysis, and APIGen's axes."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from bfcl_handlers import bfcl_modules
from bfcl_perturb import ground_truth_calls
from bfcl_render import render
from conftest import run_harness
from conftest import write_jsonl

from harness import BuildContext
from harness import DecodeError
from harness import InputError
from harness import select_formats
from harness._sensitivity import analyse

pytest.importorskip("bfcl_eval", reason="BFCL data: pip install --no-deps bfcl-eval==2026.3.23")

from harness_plugins.bfcl import BFCLFormatTaskParams
from harness_plugins.bfcl import _data as data
from harness_plugins.bfcl._format_task import BFCLFormatTask
from harness_plugins.bfcl._formats import PROMPT_AXES
from harness_plugins.bfcl._formats import PromptFormat
from harness_plugins.bfcl._formats import bfcl_configurations
from harness_plugins.bfcl._prompt import openai_tool
from harness_plugins.decoders import BFCLFormatParams
from harness_plugins.decoders._bfcl_formats import BFCLFormatCalls

#: BFCL's JSON pattern cuts an answer at the first ``}]`` it meets, so a call whose argument is a
#: list of objects never decodes in the JSON return format, in BFCL as here.
JSON_UNDECODABLE = {"simple_python_96"}
RETURN_FORMATS = PROMPT_AXES["ret_fmt"]


@pytest.fixture(scope="module")
def bfcl():
    found = bfcl_modules()
    if found is None:
        pytest.skip("bfcl_eval is not importable")
    return found


def probe_entries():
    """(category, entry, ground truth) of BFCL's format_sensitivity id map, in BFCL's order."""
    ids = data.format_ids()
    for category in ids:
        wanted = set(ids.get(category, ()))
        for entry, truth in data.entries(category):
            if entry["id"] in wanted:
                yield category, entry, truth


# --- byte parity with BFCL's own code ----------------------------------------------------------


def test_configurations_and_entries_are_bfcls(bfcl) -> None:
    assert bfcl_configurations() == bfcl.utils.get_all_format_sensitivity_configs()
    theirs = bfcl.utils.load_format_sensitivity_test_cases()
    ours = [f"{c}:{e['id']}" for _, e, _ in probe_entries() for c in bfcl_configurations()]
    assert [t["id"].split(":", 1)[1] for t in theirs] == ours and len(ours) == 5200


def test_26_prompts_are_bfcls_byte_for_byte(bfcl, tmp_path: Path) -> None:
    """The messages a model gets, for one entry per category under every configuration (and
    every one of the 96 axis combinations for two entries), equal BFCL's."""
    task = BFCLFormatTask(BFCLFormatTaskParams(limit=1), BuildContext("probe", tmp_path))
    theirs = {t["id"].split(":", 1)[1]: t for t in bfcl.utils.load_format_sensitivity_test_cases()}
    compared = 0
    for sample in task.samples():
        entry = theirs[sample.id]
        config = sample.metadata["format"]
        question = [dict(m) for m in entry["question"][0]]
        expected = bfcl.handler.system_prompt_pre_processing_chat_model(
            question, entry["function"], f"format_sensitivity_0:{config}:{sample.metadata['item']}"
        )
        assert [m.to_dict() for m in task.request(sample).messages] == expected, sample.id
        compared += 1
    assert compared == 8 * 26
    combos = [PromptFormat.parse("&".join(f"{a}={v}" for a, v in zip(PROMPT_AXES, c, strict=True)))
              for c in __import__("itertools").product(*PROMPT_AXES.values())]  # fmt: skip
    from harness_plugins.bfcl._formats import prompt_for

    for _, entry, _ in list(probe_entries())[:2]:
        hinted = next(t for t in theirs.values() if t["id"].endswith(":" + entry["id"]))
        for combo in combos:
            name = "&".join(
                f"{a}={getattr(combo, a) if a != 'tool_call_tag' else combo.tool_call_tag}"
                for a in PROMPT_AXES
            )
            mine = prompt_for(name, entry["function"])
            assert mine == bfcl.handler.formulate_system_prompt(name, hinted["function"]), name


def test_native_tools_are_bfcls_on_every_single_turn_entry(bfcl, tmp_path: Path) -> None:
    """Every single-turn entry's tools equal BFCL's OpenAI-completions handler's, as JSON text
    (key order included), and BFCL sends no tool_choice: neither does the task."""
    style = bfcl.ModelStyle.OPENAI_COMPLETIONS
    ours = {e["id"]: e for c in data.CATEGORIES for e, _ in data.entries(c)}
    compared = 0
    for category in data.CATEGORIES:
        for entry in bfcl.utils.load_dataset_entry(category):
            expected = bfcl.handler.convert_to_tool(entry["function"], bfcl.mapping, style)
            mine = [openai_tool(f, sanitize_names=True) for f in ours[entry["id"]]["function"]]
            assert json.dumps(mine) == json.dumps(expected), entry["id"]
            compared += 1
    assert compared == 3491
    from harness_plugins.bfcl import BFCLTaskParams
    from harness_plugins.bfcl._task import BFCLTask

    task = BFCLTask(
        BFCLTaskParams(categories=["live_simple"], mode="native", limit=3),
        BuildContext("bfcl", tmp_path),
    )
    for sample in task.samples():
        request = task.request(sample)
        assert request.tool_choice is None and request.tools == sample.tools


# --- decoders ---------------------------------------------------------------------------------


def decoder(ret_fmt: str, tag: bool) -> BFCLFormatCalls:
    params = BFCLFormatParams(ret_fmt=ret_fmt, tool_call_tag=tag)
    return BFCLFormatCalls(params, BuildContext("d", Path(".")))


def ours_or_error(ret_fmt: str, tag: bool, text: str):
    try:
        return [{c.name: c.arguments} for c in decoder(ret_fmt, tag).decode(text, None)]
    except DecodeError:
        return "error"


def theirs_or_error(bfcl, ret_fmt: str, tag: bool, text: str):
    from bfcl_eval.constants.enums import ReturnFormat

    try:
        return bfcl.handler.default_decode_ast_prompting(text, ReturnFormat(ret_fmt), tag)
    except Exception:
        return "error"


ODD_ANSWERS = [
    "I cannot help with that.",
    "<TOOLCALL>[f(a=1)]",
    "<functions><function name='f'><param name='a' type='integer'>x</param></function>",
    '<functions><function name="f"><param name="a" type="array">[1, 2</param></function>'
    "</functions>",
    '```json\n[{"function": "f"}]\n```',
    '{"function": "f", "parameters": {"a": 1}}',
    "[f(a=1), g(b=[1, 2]), h(c={'k': 2})]",
    '<functions><function name="f"><params><param name="a" value="True" type="boolean"/>'
    '<param name="b" value="2.5" type="float"/></params></function></functions>',
]


def test_decoders_read_every_format_as_bfcl_does(bfcl) -> None:
    """Ground truth in each return format, with and without the tag, and odd answers: our
    decoder and BFCL's ``default_decode_ast_prompting`` give the same calls (or both fail)."""
    compared = 0
    for _, entry, truth in probe_entries():
        calls = ground_truth_calls(truth, entry["function"])
        for ret_fmt in RETURN_FORMATS:
            for tag in (True, False):
                text = render(calls, ret_fmt, tag)
                expected = theirs_or_error(bfcl, ret_fmt, tag, text)
                assert ours_or_error(ret_fmt, tag, text) == expected, (entry["id"], ret_fmt)
                compared += 1
    for text in ODD_ANSWERS:
        for ret_fmt in RETURN_FORMATS:
            for tag in (True, False):
                expected = theirs_or_error(bfcl, ret_fmt, tag, text)
                assert ours_or_error(ret_fmt, tag, text) == expected, (text, ret_fmt, tag)
    assert compared == 1600


def test_xml_entities_and_python_code_are_never_evaluated() -> None:
    bomb = '<functions><!DOCTYPE x [<!ENTITY a "aaaa">]><function name="f"/></functions>'
    assert ours_or_error("verbose_xml", False, bomb) == "error"
    code = '<functions><function name="f"><param name="a" type="array">__import__("os")</param>'
    assert ours_or_error("concise_xml", False, code + "</function></functions>") == "error"
    text = "[f(a=__import__('os').getcwd())]"  # kept as text, as BFCL keeps it
    assert ours_or_error("python", False, text) == [{"f": {"a": "__import__('os').getcwd()"}}]


# --- end to end -------------------------------------------------------------------------------


def replay_prompt_lines(task: str) -> list[dict]:
    lines = []
    for _, entry, truth in probe_entries():
        calls = ground_truth_calls(truth, entry["function"])
        for name in bfcl_configurations():
            config = PromptFormat.parse(name)
            text = render(calls, config.ret_fmt, config.tool_call_tag)
            lines.append({"task": task, "sample_id": f"{name}:{entry['id']}", "output": text})
    return lines


def replay_probe(tmp_path: Path, write_manifest, **task: object) -> tuple[list[dict], dict]:
    """Ground truth rendered as each configuration asks, replayed: (records, results.json)."""
    replay = write_jsonl(tmp_path / "replay.jsonl", replay_prompt_lines("probe"))
    manifest = write_manifest(
        {
            "name": "probe",
            "backends": [{"type": "replay", "id": "truth", "path": str(replay)}],
            "tasks": [{"type": "bfcl_format", "id": "probe", **task}],
        }
    )
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    records = [json.loads(x) for x in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    return records, json.loads((tmp_path / "o" / "results.json").read_text())


def failures(records: list[dict]) -> set[tuple[str, str]]:
    return {
        (r["format_item"], PromptFormat.parse(r["format"]).ret_fmt)
        for r in records
        if r["scores"]["accuracy"] != 1.0
    }


@pytest.mark.slow
def test_replayed_ground_truth_scores_one_in_every_configuration(
    tmp_path: Path, write_manifest
) -> None:
    """All 5,200 samples; the one entry BFCL's own JSON decoder cannot read fails there only."""
    records, _ = replay_probe(tmp_path, write_manifest)
    assert len(records) == 5200
    assert failures(records) == {(item, "json") for item in JSON_UNDECODABLE}


def test_replayed_slice_scores_one_and_reports_the_spread(tmp_path: Path, write_manifest) -> None:
    """Five entries under the 26 configurations: results.json and the report get the probe."""
    records, results = replay_probe(tmp_path, write_manifest, categories=["simple_python"], limit=5)
    assert len(records) == 5 * 26
    assert failures(records) == {(item, "json") for item in JSON_UNDECODABLE}
    probe = results["format_sensitivity"]["probe"]
    found = probe["backends"]["truth"]["accuracy"]
    assert len(found["configurations"]) == 26 and found["most_sensitive_axis"] == "ret_fmt"
    assert found["spread"] == pytest.approx(1 / 5) and probe["axes"]["ret_fmt"][0] == "python"
    assert found["axes"]["func_doc_fmt"]["effect"] == 0.0
    assert set(results["subtasks"]["probe"]) == set(bfcl_configurations())
    assert "Format sensitivity: probe" in (tmp_path / "o" / "report.html").read_text()


def test_native_probe_replays_the_truth_under_every_tool_configuration(
    tmp_path: Path, write_manifest
) -> None:
    lines = []
    for _, entry, truth in list(probe_entries())[:3]:
        calls = ground_truth_calls(truth, entry["function"])
        native = [
            {"name": n.replace(".", "_"), "arguments": json.dumps(a)}
            for c in calls
            for n, a in c.items()
        ]
        for name in ("schema=bfcl&doc_hint=True", "schema=json_schema&doc_hint=False"):
            lines.append({"task": "t", "sample_id": f"{name}:{entry['id']}", "tool_calls": native})
    replay = write_jsonl(tmp_path / "replay.jsonl", lines)
    formats = ["schema=bfcl&doc_hint=True", "schema=json_schema&doc_hint=False"]
    task = {"type": "bfcl_format", "id": "t", "mode": "native", "formats": formats, "limit": 3}
    task["categories"] = ["simple_python"]
    manifest = write_manifest(
        {"name": "n", "backends": [{"type": "replay", "path": str(replay)}], "tasks": [task]}
    )
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    records = [json.loads(x) for x in (tmp_path / "o" / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 6 and all(r["scores"]["accuracy"] == 1.0 for r in records)


def test_strict_schema_axis_rebuilds_what_bfcl_keeps(tmp_path: Path) -> None:
    params = BFCLFormatTaskParams(
        mode="native", categories=["simple_python"], limit=1, formats=["doc_hint=False"]
    )
    samples = list(BFCLFormatTask(params, BuildContext("t", tmp_path)).samples())
    by_format = {s.metadata["format"]: s.tools[0]["function"] for s in samples}
    bfcl_tool = by_format["schema=bfcl&doc_hint=False"]
    strict = by_format["schema=json_schema&doc_hint=False"]
    assert list(strict["parameters"]) == ["type", "properties", "required"]
    assert not bfcl_tool["description"].endswith("Python 3 syntax.")


def test_a_bad_configuration_name_is_one_line_and_exit_2(tmp_path: Path, write_manifest) -> None:
    replay = write_jsonl(tmp_path / "r.jsonl", [])
    manifest = write_manifest(
        {
            "name": "x",
            "backends": [{"type": "replay", "path": str(replay)}],
            "tasks": [{"type": "bfcl_format", "formats": ["ret_fmt=yaml"]}],
        }
    )
    result = run_harness("validate", str(manifest))
    lines = [x for x in result.stderr.splitlines() if "formats" in x]
    assert result.returncode == 2 and len(lines) == 1
    assert "tasks[0].formats[0]: 'ret_fmt=yaml' is not allowed; use 'all' or axis=value" in lines[0]
    native_axis = {"type": "bfcl_format", "formats": ["schema=bfcl"]}  # prompt mode: no such axis
    manifest = write_manifest(
        {"name": "x", "backends": [{"type": "replay", "path": str(replay)}], "tasks": [native_axis]}
    )
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "formats[0]: 'schema=bfcl'" in result.stderr


def test_select_formats_takes_all_full_and_partial_names() -> None:
    own = bfcl_configurations()
    assert select_formats(["all"], PROMPT_AXES, own) == own
    json_ones = select_formats(["ret_fmt=json"], PROMPT_AXES, own)
    assert len(json_ones) == 6 and all("ret_fmt=json&" in c for c in json_ones)
    full = "style=experimental&ret_fmt=json&tool_call_tag=True&func_doc_fmt=xml&prompt_fmt=markdown"
    (chosen,) = select_formats([full], PROMPT_AXES, own)
    assert chosen.startswith("ret_fmt=json&tool_call_tag=True") and chosen not in own
    with pytest.raises(InputError, match="names an axis twice"):
        select_formats(["ret_fmt=json&ret_fmt=python"], PROMPT_AXES, own)
    with pytest.raises(InputError, match="selects none"):
        select_formats(["prompt_fmt=markdown&style=experimental"], PROMPT_AXES, own)


# --- the analysis -----------------------------------------------------------------------------


def synthetic(backend: str, scores: dict[str, list[float]]) -> list[dict]:
    return [
        {"task": "t", "backend": backend, "sample_id": f"{c}:{i}", "format": c,
         "format_item": str(i), "scores": {"accuracy": v}}
        for c, values in scores.items() for i, v in enumerate(values)
    ]  # fmt: skip


def test_analysis_spread_std_axis_and_ranking() -> None:
    a = {
        "x=1&y=1": [1, 1, 1, 1, 0, 1, 1, 1],
        "x=2&y=1": [0, 0, 1, 0, 0, 0, 1, 0],
        "x=1&y=2": [1, 1, 1, 0, 1, 1, 1, 1],
    }
    b = {k: [1 - v for v in vs] for k, vs in a.items()}
    found = analyse(synthetic("a", a) + synthetic("b", b), resamples=500)["t"]
    got = found["backends"]["a"]["accuracy"]
    means = [statistics.fmean(v) for v in a.values()]
    assert got["spread"] == pytest.approx(max(means) - min(means))
    assert got["std"] == pytest.approx(statistics.stdev(means))
    assert got["spread_ci"][0] <= got["spread"] <= got["spread_ci"][1]
    assert got["most_sensitive_axis"] == "x" and got["axes"]["x"]["pairs"] == 1
    assert got["axes"]["y"]["effect"] == pytest.approx(0.0)
    assert got["best"] == "x=1&y=2" and got["worst"] == "x=2&y=1"
    ranking = found["ranking"]["accuracy"]  # b wins under x=2 only: the order flips
    assert ranking["kendall_tau_mean"] == pytest.approx(-1 / 3) and ranking["kendall_tau_min"] == -1
    assert found["ranking"]["accuracy"]["order"]["x=2&y=1"] == ["b", "a"]


def test_analysis_ignores_records_without_a_configuration() -> None:
    plain = [{"task": "t", "backend": "a", "sample_id": "1", "scores": {"accuracy": 1.0}}]
    assert analyse(plain) == {}


def test_analysis_names_no_axis_when_nothing_moves() -> None:
    flat = synthetic("a", {"x=1&y=1": [0, 0], "x=2&y=1": [0, 0], "x=1&y=2": [0, 0]})
    got = analyse(flat, resamples=100)["t"]["backends"]["a"]["accuracy"]
    assert got["spread"] == 0 and got["spread_ci"] == [0, 0]
    assert got["most_sensitive_axis"] is None and got["best"] is None


# --- APIGen's axes ----------------------------------------------------------------------------


def test_apigen_offers_tools_placement_and_tool_format(tmp_path: Path, write_manifest) -> None:
    tools = [{"name": "f", "description": "F.", "parameters": {"a": {"type": "int"}}}]
    rows = [
        {"id": i, "query": f"f of {i}", "tools": json.dumps(tools),
         "answers": json.dumps([{"name": "f", "arguments": {"a": i}}])}
        for i in range(4)
    ]  # fmt: skip
    (tmp_path / "a.json").write_text(json.dumps(rows))
    answer = {"tools_in=user": True, "tools_in=system": False}  # the system one fails
    lines = [
        {"task": "apigen", "sample_id": f"tools_in={p}&tool_format={f}:{i}",
         "output": json.dumps({"tool_calls": [{"name": "f", "arguments": {"a": i}}]})
         if answer[f"tools_in={p}"] else "no"}
        for i in range(4) for p in ("user", "system") for f in ("xlam", "openai")
    ]  # fmt: skip
    replay = write_jsonl(tmp_path / "r.jsonl", lines)
    task = {"type": "apigen", "path": str(tmp_path / "a.json"), "formats": ["all"]}
    manifest = write_manifest(
        {"name": "a", "backends": [{"type": "replay", "path": str(replay)}], "tasks": [task]}
    )
    result = run_harness("run", str(manifest), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    found = json.loads((tmp_path / "o" / "results.json").read_text())["format_sensitivity"]
    accuracy = found["apigen"]["backends"]["replay"]
    metric = next(iter(accuracy.values()))
    assert metric["most_sensitive_axis"] == "tools_in" and metric["spread"] == 1.0


def test_apigen_messages_per_configuration(tmp_path: Path) -> None:
    from harness_plugins.apigen import APIGenTaskParams
    from harness_plugins.apigen._task import APIGenTask

    tools = [{"name": "f", "description": "F.", "parameters": {"a": {"type": "int"}}}]
    row = {"id": 1, "query": "q", "tools": json.dumps(tools), "answers": "[]"}
    (tmp_path / "a.json").write_text(json.dumps([row]))
    params = APIGenTaskParams(path=str(tmp_path / "a.json"), formats=["all"])
    samples = {s.metadata["format"]: s for s in APIGenTask(params, BuildContext("a", tmp_path))
               .samples()}  # fmt: skip
    system = samples["tools_in=system&tool_format=openai"].messages
    assert [m.role for m in system] == ["system", "user"] and '"type": "object"' in system[
        0
    ].content
    (user,) = samples["tools_in=user&tool_format=xlam"].messages
    assert "[BEGIN OF AVAILABLE TOOLS]" in user.content and '"type": "int"' in user.content
    unprobed = APIGenTaskParams(path=str(tmp_path / "a.json"))
    (plain,) = APIGenTask(unprobed, BuildContext("a", tmp_path)).samples()
    assert plain.id == "1" and plain.messages == samples["tools_in=user&tool_format=xlam"].messages
    with pytest.raises(InputError, match="prompt-mode"):
        APIGenTask(
            APIGenTaskParams(path=str(tmp_path / "a.json"), formats=["all"], mode="native"),
            BuildContext("a", tmp_path),
        )
