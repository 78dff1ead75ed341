"""BFCL's multi-turn categories: parity of ``harness_plugins.bfcl._mt_checker`` with BFCL's own
multi-turn checker (bfcl-eval 2026.3.23), and the ``bfcl_multi_turn`` environment and metric
played through the ``agent`` task with scripted backends.

Parity: every entry of the four categories is judged in its ground-truth form and in perturbed
forms (a wrong argument value, a string naming a function before "(", a missing call, an extra
call, a call moved to another turn, an unknown function, a bad argument name, a silent turn, a
dropped turn, the calls split over steps) by BFCL's evaluator
(``_evaluate_single_multi_turn_entry`` compiled from its source, then its
``multi_turn_checker``) and by ours: verdicts and error types must agree on every case.

BFCL is imported only here, with a stub for its model registry (which would import every
provider SDK); its instances live in ``multi_turn_utils``'s globals and are removed after
each case. The environment tests do not need BFCL's code, only its data (the wheel).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import sys
import time
import types
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness_plugins.bfcl import BFCLMultiTurnParams
from harness_plugins.bfcl._mt_checker import CATEGORIES
from harness_plugins.bfcl._mt_checker import MAX_STEPS_PER_TURN
from harness_plugins.bfcl._mt_checker import category_entries
from harness_plugins.bfcl._mt_checker import check_multi_turn
from harness_plugins.bfcl._mt_classes import World
from harness_plugins.bfcl._mt_classes import parse_ground_truth
from harness_plugins.bfcl._mt_env import ADDED_FUNCTIONS
from harness_plugins.bfcl._mt_env import FORCED_QUIT
from harness_plugins.bfcl._mt_env import BFCLMultiTurn
from harness_plugins.bfcl._mt_env import turns_from_trajectory

from harness import BuildContext
from harness import ToolCall

Turns = list[list[list[ToolCall]]]

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bfcl_eval") is None,
    reason="BFCL's data is missing: pip install --no-deps bfcl-eval==2026.3.23",
)


# ====================================================================== BFCL's own checker
@pytest.fixture(scope="module")
def bfcl() -> types.SimpleNamespace:
    """BFCL's multi-turn evaluator for one entry, and the module holding its instances."""
    key = "bfcl_eval.constants.model_config"
    saved = sys.modules.get(key)
    stub = types.ModuleType(key)
    stub.MODEL_CONFIG_MAPPING = {}  # type: ignore[attr-defined]
    sys.modules[key] = stub
    try:
        from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
        from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
    finally:
        if saved is None:
            sys.modules.pop(key, None)
        else:
            sys.modules[key] = saved
    package = Path(importlib.util.find_spec("bfcl_eval").origin).parent  # type: ignore[union-attr]
    namespace = {
        "multi_turn_checker": multi_turn_checker,
        "is_empty_execute_response": multi_turn_utils.is_empty_execute_response,
        "BaseHandler": object,
    }
    evaluate = _runner_function(package, "_evaluate_single_multi_turn_entry", namespace)
    return types.SimpleNamespace(evaluate=evaluate, utils=multi_turn_utils)


def _runner_function(package: Path, name: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    """A function of BFCL's ``eval_runner.py`` compiled on its own (BFCL's code, not model
    output): the module itself imports every model handler."""
    tree = ast.parse((package / "eval_checker" / "eval_runner.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    exec(compile(ast.Module(body=[node], type_ignores=[]), "eval_runner.py", "exec"), namespace)
    return namespace[name]  # type: ignore[no-any-return]


class _Handler:
    """Stands in for a BFCL model handler: a step's "response" is already its call strings."""

    def decode_execute(self, result: Any, has_tool_call_tag: bool = False) -> Any:
        return result


def call_text(call: ToolCall) -> str:
    """A call as BFCL's handlers write it for execution (``convert_to_function_call``)."""
    return f"{call.name}({','.join(f'{k}={v!r}' for k, v in call.arguments.items())})"


def bfcl_verdict(bfcl: types.SimpleNamespace, entry: dict, truth: list, turns: Turns) -> str:
    """BFCL's error type for the model's turns ("" when valid)."""
    before = set(vars(bfcl.utils))
    model_result = [[[call_text(c) for c in step] for step in turn] for turn in turns]
    prompt = {k: v for k, v in json.loads(json.dumps(entry)).items() if k != "function"}
    category = entry["id"].rsplit("_", 1)[0]
    try:
        result = bfcl.evaluate(
            _Handler(), entry["id"], model_result, truth, prompt, "parity", category
        )
    finally:  # BFCL keeps every instance in its module globals, by model name and entry id
        for name in set(vars(bfcl.utils)) - before:
            del vars(bfcl.utils)[name]
    return "" if result["valid"] else str(result["error"]["error_type"])


# ====================================================================== the cases
def truth_calls(entry: dict, truth: list) -> list[list[ToolCall]]:
    return [[parse_ground_truth(t, entry["involved_classes"]) for t in turn] for turn in truth]


def as_turns(calls: list[list[ToolCall]]) -> Turns:
    """Each turn's calls as one step (a turn without calls has no step)."""
    return [[list(turn)] if turn else [] for turn in calls]


def changed(value: Any) -> Any:
    """A different value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + (1 if isinstance(value, int) else 1.5)
    if isinstance(value, str):
        return value + "_x" if value else "x"
    if isinstance(value, list):
        return value[:-1] if value else ["x"]
    if isinstance(value, dict):
        return {**value, "x": 1}
    return "x"


def cases(index: int, entry: dict, truth: list) -> dict[str, Turns]:
    """The ground truth and its perturbations, chosen by the entry's index (deterministic)."""
    calls = truth_calls(entry, truth)
    busy = [t for t, turn in enumerate(calls) if turn]
    turn = busy[index % len(busy)]
    out: dict[str, Turns] = {"truth": as_turns(calls)}
    out["wrong_value"] = as_turns(_wrong_value(calls, index, turn))
    out["call_in_text"] = as_turns(_wrong_value(calls, index, turn, _call_in_text))
    out["missing_call"] = as_turns(_edited(calls, turn, lambda c: _without(c, index)))
    out["extra_call"] = as_turns(_edited(calls, turn, lambda c: [*c, c[index % len(c)]]))
    out["moved_call"] = as_turns(_moved(calls, index))
    unknown = ToolCall("no_such_function", {"x": 1})
    out["unknown_function"] = as_turns(_edited(calls, turn, lambda c: [unknown, *c]))
    out["bad_argument"] = as_turns(_edited(calls, turn, _bogus))
    out["silent_turn"] = as_turns(_edited(calls, turn, lambda c: []))
    out["dropped_turn"] = as_turns(calls[:-1])
    out["split_steps"] = [[[], *([c] for c in turn), []] for turn in calls]
    return out


def _edited(calls: list[list[ToolCall]], turn: int, edit: Callable) -> list[list[ToolCall]]:
    return [edit(list(c)) if t == turn else list(c) for t, c in enumerate(calls)]


def _bogus(turn: list[ToolCall]) -> list[ToolCall]:
    """The turn's first call with an argument the function does not take."""
    first = turn[0]
    return [ToolCall(first.name, {**first.arguments, "bogus": 1}), *turn[1:]]


def _without(turn: list[ToolCall], index: int) -> list[ToolCall]:
    return [c for i, c in enumerate(turn) if i != index % len(turn)]


def _call_in_text(call: ToolCall, value: Any) -> Any:
    """A string that names a function before "(", which BFCL rewrites before its eval."""
    return f"{value} {call.name} (1)" if isinstance(value, str) else None


def _wrong_value(
    calls: list[list[ToolCall]], index: int, turn: int, change: Callable = lambda c, v: changed(v)
) -> list[list[ToolCall]]:
    """One argument of one call changed: the first call with an argument ``change`` accepts
    (not None), from ``turn`` on."""
    order = [t for t in range(len(calls)) if t >= turn] + [t for t in range(turn)]
    for t in order:
        for i, call in enumerate(calls[t]):
            keys = [k for k in call.arguments if change(call, call.arguments[k]) is not None]
            if keys:
                key = keys[index % len(keys)]
                value = change(call, call.arguments[key])
                wrong = ToolCall(call.name, {**call.arguments, key: value})
                return _edited(calls, t, lambda c, i=i, wrong=wrong: [*c[:i], wrong, *c[i + 1 :]])
    return calls


def _moved(calls: list[list[ToolCall]], index: int) -> list[list[ToolCall]]:
    """A call moved one turn later (even index) or earlier (odd index)."""
    moved = [list(turn) for turn in calls]
    later = index % 2 == 0
    sources = [t for t, turn in enumerate(moved) if turn and (t + 1 < len(moved) if later else t)]
    if not sources:
        return moved
    source = sources[index % len(sources)]
    if later:
        moved[source + 1].insert(0, moved[source].pop())
    else:
        moved[source - 1].append(moved[source].pop(0))
    return moved


# ====================================================================== parity
ERROR_TYPES = {
    "multi_turn:force_terminated",
    "multi_turn:empty_turn_model_response",
    "multi_turn:instance_state_mismatch",
    "multi_turn:execution_response_mismatch",
}


@pytest.mark.parametrize("category", CATEGORIES)
def test_our_verdicts_equal_bfcl_s_on_every_entry(
    bfcl: types.SimpleNamespace, category: str
) -> None:
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    disagreements: list[tuple[str, str, str, str]] = []
    truth_failures_bfcl: list[str] = []
    truth_failures_ours: list[str] = []
    for index, (entry, truth) in enumerate(category_entries(category).values()):
        counts["entries"] += 1
        for name, turns in cases(index, entry, truth).items():
            theirs = bfcl_verdict(bfcl, entry, truth, turns)
            ours = check_multi_turn(entry, truth, turns).error_type
            counts["cases"] += 1
            counts["agree"] += ours == theirs
            kinds[theirs or "valid"] += 1
            if ours != theirs:
                disagreements.append((entry["id"], name, ours, theirs))
            if name == "truth" and theirs:
                truth_failures_bfcl.append(entry["id"])
            if name == "truth" and ours:
                truth_failures_ours.append(entry["id"])
    elapsed = time.perf_counter() - started
    print(
        f"\n{category}: {counts['entries']} entries, {counts['cases']} cases "
        f"({counts['cases'] - counts['entries']} perturbed), {counts['agree']} agree; "
        f"BFCL fails the ground truth of {truth_failures_bfcl or 'none'}; "
        f"verdicts {dict(kinds)}; {elapsed:.1f}s"
    )
    assert not disagreements, disagreements[:10]
    assert counts["entries"] == 200 and counts["cases"] == 200 * 11
    assert truth_failures_ours == truth_failures_bfcl  # (none in bfcl-eval 2026.3.23)
    assert set(kinds) == ERROR_TYPES | {"valid"}  # every failure kind was exercised


def test_our_checker_alone_on_verdicts_known_in_advance() -> None:
    """No BFCL code needed: each failure kind on an entry whose verdicts are known."""
    entry, truth = category_entries("multi_turn_base")["multi_turn_base_0"]
    verdicts = {n: check_multi_turn(entry, truth, t) for n, t in cases(0, entry, truth).items()}
    state = "multi_turn:instance_state_mismatch"
    assert {n: v.error_type for n, v in verdicts.items()} == {
        "truth": "",
        "wrong_value": state,  # cd(folder='document_x') fails: mkdir lands elsewhere
        "call_in_text": state,
        "missing_call": state,
        "extra_call": "",  # a second cd into 'document' fails and changes nothing
        "moved_call": state,
        "unknown_function": "",
        "bad_argument": state,
        "silent_turn": "multi_turn:empty_turn_model_response",
        "dropped_turn": "multi_turn:force_terminated",
        "split_steps": "",
    }
    assert verdicts["silent_turn"].turn == verdicts["wrong_value"].turn == 0
    entry, truth = category_entries("multi_turn_base")["multi_turn_base_1"]
    calls = truth_calls(entry, truth)
    grep = ToolCall("grep", {"file_name": "log.txt", "pattern": "Error"})
    assert calls[2][-1] == grep
    calls[2][-1] = ToolCall("grep", {**grep.arguments, "pattern": "Warning"})  # reads only
    result = check_multi_turn(entry, truth, as_turns(calls))
    assert (result.error_type, result.turn) == ("multi_turn:execution_response_mismatch", 2)


@pytest.mark.parametrize(
    ("model_text", "truth_text"),
    [
        ("run ls() now", "run ls() now"),  # both rewritten, with different instance names
        ("news (x)", "news(x)"),  # the space before "(" dropped on both sides
        ("ls ()", "ls()"),
        ("plain", "plain (x)"),
        ("tab\t(x)", "tab(x)"),  # repr writes the tab as \t: no space before "("
    ],
)
def test_bfcl_s_rewriting_of_call_text_inside_strings_is_kept(
    bfcl: types.SimpleNamespace, model_text: str, truth_text: str
) -> None:
    entry, truth = category_entries("multi_turn_base")["multi_turn_base_0"]
    echo = "echo(content={!r},file_name='previous_report.pdf')"
    expected = [[*truth[0], echo.format(truth_text)], *truth[1:]]
    calls = truth_calls(entry, truth)
    calls[0].append(ToolCall("echo", {"content": model_text, "file_name": "previous_report.pdf"}))
    turns = as_turns(calls)
    ours = check_multi_turn(entry, expected, turns).error_type
    assert ours == bfcl_verdict(bfcl, entry, expected, turns)


# ====================================================================== untrusted calls
def test_ground_truth_is_parsed_never_evaluated() -> None:
    classes = ["GorillaFileSystem"]
    assert parse_ground_truth("sort('final_report.pdf')", classes) == ToolCall(
        "sort", {"file_name": "final_report.pdf"}
    )
    for text in ("cd(folder=__import__('os').getcwd())", "os.system('ls')", "cd(**{'a': 1})"):
        with pytest.raises(ValueError):
            parse_ground_truth(text, classes)


def test_only_documented_functions_run_and_errors_are_results() -> None:
    entry, _ = category_entries("multi_turn_base")["multi_turn_base_0"]
    world = World(entry)
    assert world.run(ToolCall("pwd", {})) == ('{"current_working_directory": "/workspace"}', True)
    assert world.run(ToolCall("_load_scenario", {"scenario": {}})) == (
        "Error during execution: name '_load_scenario' is not defined",
        False,
    )
    assert world.run(ToolCall("exit", {}))[0].endswith("Function call exit is not allowed.")
    text, ran = world.run(ToolCall("cd", {"directory": "x"}))
    assert not ran and "unexpected keyword argument 'directory'" in text
    math = World({"id": "multi_turn_base_x", "involved_classes": ["MathAPI"]})
    assert math.run(ToolCall("power", {"base": 10, "exponent": 10**9}))[0].startswith(
        "Error during execution: exponent 1000000000 is too large"
    )
    assert math.run(ToolCall("power", {"base": 2, "exponent": 10})) == ('{"result": 1024}', True)
    nan = math.run(ToolCall("add", {"a": float("nan"), "b": 1}))
    assert nan == ("Error during execution: name 'nan' is not defined", False)


# ====================================================================== the environment
def first_with(category: str, cls: str) -> tuple[dict, list]:
    return next(
        (e, t) for e, t in category_entries(category).values() if cls in e["involved_classes"]
    )


#: One entry per category, over different classes (miss_func_0 holds `sort` back to turn 3).
ENTRIES = {
    "multi_turn_base": ("TwitterAPI", "multi_turn_base_0"),
    "multi_turn_miss_func": ("GorillaFileSystem", "multi_turn_miss_func_0"),
    "multi_turn_miss_param": ("TravelAPI", None),
    "multi_turn_long_context": ("TradingBot", None),
}


def entry_for(category: str) -> tuple[dict, list]:
    cls, entry_id = ENTRIES[category]
    if entry_id:
        return category_entries(category)[entry_id]
    return first_with(category, cls)


def call(tool: ToolCall) -> dict[str, Any]:
    return {"tool_calls": [{"name": tool.name, "arguments": tool.arguments}]}


def follow_truth(entry: dict, truth: list) -> list[Any]:
    """A script that makes the ground truth's calls, one per model turn, and closes each turn
    with words."""
    script: list[Any] = []
    for turn in truth_calls(entry, truth):
        script += [call(c) for c in turn] + ["Done."]
    return script


def manifest(entry_id: str, category: str, script: list[Any], **task: Any) -> dict[str, Any]:
    environment = {"type": "bfcl_multi_turn", "categories": [category]}
    entry = {"type": "agent", "id": "mt", "environment": environment, "episodes": [entry_id]}
    return {
        "name": "bfcl-multi-turn",
        "backends": [{"type": "scripted", "id": "s", "responses": script}],
        "tasks": [{**entry, "max_steps": len(script) + 1, **task}],
        "metrics": [{"type": "bfcl_multi_turn"}],
    }


def record_of(run_dir: Path) -> dict[str, Any]:
    (line,) = (run_dir / "samples.jsonl").read_text().splitlines()
    return json.loads(line)  # type: ignore[no-any-return]


@pytest.mark.parametrize("category", CATEGORIES)
def test_a_ground_truth_following_agent_succeeds(harness_run: Any, category: str) -> None:
    entry, truth = entry_for(category)
    script = follow_truth(entry, truth)
    record = record_of(harness_run(manifest(entry["id"], category, script)).run_dir)
    assert record["error"] is None
    scores = record["scores"]
    assert scores["success"] == scores["accuracy"] == scores["progress"] == 1.0
    assert record["error_type"] == "" and record["ended_by"] == "success"
    assert record["subtask"] == category
    words = [s for s in record["trajectory"] if s["actions"] == []]
    assert len(words) == len(truth)  # each turn closed in words; the last one ends it
    assert words[-1]["observation"] == "The conversation is over (BFCL: valid)."


def test_prompt_mode_and_parallel_calls_play_the_same_ground_truth(harness_run: Any) -> None:
    """Calls as text (python_calls) with the held-out docs written into the user message,
    and each turn's calls in one model turn (BFCL's parallel calls)."""
    entry, truth = entry_for("multi_turn_miss_func")
    calls = truth_calls(entry, truth)
    text = [f"[{', '.join(_python(c) for c in turn)}]" for turn in calls if turn]
    script = [r for turn in calls for r in ([text.pop(0)] if turn else []) + ["[]"]]
    agent = {"type": "act", "mode": "prompt", "max_calls_per_step": 8}
    plan = manifest(entry["id"], "multi_turn_miss_func", script, agent=agent)
    record = record_of(harness_run(plan).run_dir)
    assert record["scores"]["success"] == record["scores"]["accuracy"] == 1.0
    held_out = next(s for s in record["trajectory"] if ADDED_FUNCTIONS in str(s["observation"]))
    assert "'name': 'sort'" in held_out["observation"]
    assert len(record["trajectory"]) == len(script)


def _python(call: ToolCall) -> str:
    return f"{call.name}({', '.join(f'{k}={v!r}' for k, v in call.arguments.items())})"


def test_a_wrong_call_fails_with_bfcl_s_error_type(harness_run: Any) -> None:
    entry, truth = entry_for("multi_turn_base")
    script = follow_truth(entry, truth)
    script[0] = call(ToolCall("cd", {"folder": "nowhere"}))  # instead of cd(folder='document')
    record = record_of(harness_run(manifest(entry["id"], "multi_turn_base", script)).run_dir)
    assert record["scores"]["success"] == record["scores"]["accuracy"] == 0.0
    assert record["error_type"] == "multi_turn:instance_state_mismatch"
    assert record["ended_by"] == "done" and record["scores"]["progress"] < 1.0


def test_held_out_functions_appear_only_from_their_turn(tmp_path: Path) -> None:
    params = BFCLMultiTurnParams(categories=["multi_turn_miss_func"], limit=1)
    env = BFCLMultiTurn(params, BuildContext("env", tmp_path)).fork()
    observation, goal = env.reset("multi_turn_miss_func_0", None)
    assert observation.startswith("Move 'final_report.pdf'") and "current turn" in goal

    def names() -> set[str]:
        return {t["function"]["name"] for t in env.tools()}

    assert "sort" not in names() and {"mv", "grep", "post_tweet"} <= names()
    for turn in (1, 2):
        assert not env.respond("ok").done and "sort" not in names(), turn
    result = env.respond("I cannot sort without a sort function.")
    assert "sort" in names() and not result.done
    assert result.observation.endswith("\n" + ADDED_FUNCTIONS)
    assert "'name': 'sort'" in result.observation  # prompt mode: the docs in the message
    params = BFCLMultiTurnParams(categories=["multi_turn_miss_func"], mode="native")
    native = BFCLMultiTurn(params, BuildContext("env", tmp_path)).fork()
    native.reset("multi_turn_miss_func_0", None)
    for _ in range(2):
        native.respond("ok")
    assert native.respond("ok").observation == ADDED_FUNCTIONS


def test_a_turn_over_twenty_steps_is_force_terminated(harness_run: Any) -> None:
    entry, _ = entry_for("multi_turn_base")
    script = [call(ToolCall("pwd", {}))] * (MAX_STEPS_PER_TURN + 1) + ["Done."]
    record = record_of(harness_run(manifest(entry["id"], "multi_turn_base", script)).run_dir)
    steps = record["trajectory"]
    assert len(steps) == MAX_STEPS_PER_TURN + 1 and steps[-1]["done"]
    assert steps[-1]["observation"].endswith(FORCED_QUIT)
    assert not any(s["done"] for s in steps[:-1])
    assert record["ended_by"] == "done" and record["scores"]["success"] == 0.0
    assert record["error_type"] == "multi_turn:force_terminated"


def test_the_metric_reads_turns_back_from_a_trajectory() -> None:
    pwd = {"name": "pwd", "arguments": {}}
    ls = {"name": "ls", "arguments": {}}
    capped = "only the first 1 ran"
    steps = [
        {"actions": [pwd, ls], "results": [{}], "observation": "..."},  # capped at one
        {"actions": None, "parse_error": "syntax"},
        {"actions": [], "done": False},
        {
            "actions": [ls, pwd],
            "observation": f"a\nERROR | 2 calls in one turn; {capped}",
        },
        {"actions": [], "done": True},
    ]
    turns = turns_from_trajectory(steps)
    assert [[[c.name for c in s] for s in t] for t in turns] == [[["pwd"]], [["ls"]]]
    assert len(turns_from_trajectory(steps[:-1])) == 1  # the open turn never closed
