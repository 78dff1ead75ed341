"""Agents over many steps, with scripted backends: the environments' rules, progress that never
goes down, a hard budget, parse failures and faults as observations, recovery, the three
strategies, an environment that raises, and an episode killed mid-way that resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness import Backend
from harness import ChatRequest
from harness import ChatResponse
from harness import Environment
from harness import Params
from harness import StepResult
from harness import StopRun
from harness import ToolCall
from harness import hookimpl
from harness import param
from harness import run_manifest
from harness.testing import make_host


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"tool_calls": [{"name": name, "arguments": arguments}]}


def agent_manifest(environment: Any, responses: list[Any], **task: Any) -> dict[str, Any]:
    entry = {"type": "agent", "id": "agent", "environment": environment, **task}
    return {
        "name": "agents",
        "backends": [{"type": "scripted", "id": "s", "responses": responses}],
        "tasks": [entry],
    }


def episodes(run_dir: Path) -> dict[str, dict[str, Any]]:
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    return {r["sample_id"]: r for r in map(json.loads, lines)}


def test_a_scripted_plan_solves_blocks_and_every_turn_is_recorded(harness_run: Any) -> None:
    moves = [call("move", block="B", destination="C"), call("move", block="A", destination="B")]
    result = harness_run(agent_manifest("blocks", moves, episodes=["blocks-2"]))
    record = episodes(result.run_dir)["blocks-2"]
    assert record["scores"] == {
        "success": 1.0,
        "progress": 1.0,
        "steps": 2.0,
        "steps_to_success": 2.0,
        "grounding": 1.0,
        "format_errors": 0.0,
        "tokens": 0.0,
        "latency_s": 0.0,
        **dict.fromkeys(["IFE_per_step", "IFN_per_call", "IAN_per_call", "IAT_per_call"], 0.0),
        "RAC_per_call": 0.0,
    }
    assert record["patterns"] == []
    first, second = record["trajectory"]
    assert first["actions"] == [{"name": "move", "arguments": {"block": "B", "destination": "C"}}]
    assert first["observation"] == "A is on the table; B is on C; C is on the table"
    assert (first["progress"], second["progress"]) == (pytest.approx(2 / 3), 1.0)
    assert "Goal: Build the tower A on B on C" in first["prompt"]
    assert record["ended_by"] == "success" and record["subtask"] == "easy"
    assert [c["name"] for c in record["calls"]] == ["move", "move"]


def test_progress_never_goes_down_and_the_budget_is_hard(harness_run: Any) -> None:
    there_and_back = [
        call("move", block="A", destination="B"),  # on(A, B): 2 of 3 goal facts
        call("move", block="A", destination="table"),  # undone: 1 of 3 hold again
    ]
    manifest = agent_manifest("blocks", there_and_back, episodes=["blocks-2"], max_steps=5)
    record = episodes(harness_run(manifest).run_dir)["blocks-2"]
    progress = [s["progress"] for s in record["trajectory"]]
    assert len(progress) == 5 and record["ended_by"] == "budget"
    assert progress == sorted(progress) and progress[-1] == pytest.approx(2 / 3)
    assert "RAC" in record["patterns"]  # the same two moves, again and again
    assert record["scores"]["success"] == 0.0 and "steps_to_success" not in record["scores"]


def test_an_unreadable_turn_is_an_observation_and_the_agent_recovers(harness_run: Any) -> None:
    script = ["[move(block='A', destination=", "[move(block='A', destination='B')]"]
    agent = {"type": "act", "mode": "prompt"}
    manifest = agent_manifest("blocks", script, episodes=["blocks-1"], agent=agent)
    record = episodes(harness_run(manifest).run_dir)["blocks-1"]
    bad, good = record["trajectory"]
    assert bad["actions"] is None and bad["parse_error"].startswith("syntax")
    assert bad["observation"].startswith("ERROR | could not read a function call")
    assert good["actions"][0]["name"] == "move" and record["scores"]["success"] == 1.0
    assert record["scores"]["format_errors"] == 0.5 and record["scores"]["recovery"] == 1.0


def test_invalid_actions_lower_grounding_and_faults_are_observations(harness_run: Any) -> None:
    script = [
        call("list_tasks"),  # the scripted fault: 503
        call("delete_task", task_id=99),  # no such task: invalid
        call("delete_task", task_id="3"),  # a string for an integer: invalid
        call("delete_task", task_id=3),
    ]
    manifest = agent_manifest("todo", script, episodes=["todo-delete-fault"])
    record = episodes(harness_run(manifest).run_dir)["todo-delete-fault"]
    fault, missing, typed, done = record["trajectory"]
    assert fault["observation"] == "ERROR | 503 Service Unavailable: try again"
    assert fault["valid"] and fault["error"] == "fault"
    assert missing["observation"] == "ERROR | delete_task: no task 99; list_tasks shows the ids"
    assert "wrong_type: task_id (expected integer)" in typed["observation"]
    assert not missing["valid"] and not typed["valid"] and done["valid"]
    scores = record["scores"]
    assert scores["grounding"] == 0.5 and scores["success"] == 1.0 and scores["recovery"] == 1.0
    assert record["patterns"] == ["IAT"] and scores["IAT_per_call"] == 0.25  # "3" for an int


def test_a_wrong_answer_ends_a_query_episode_with_partial_progress(harness_run: Any) -> None:
    script = [call("search_paper", title="quantized tool use"), call("finish", answer="ICML")]
    manifest = agent_manifest("academia", script, episodes=["academia-venue"])
    record = episodes(harness_run(manifest).run_dir)["academia-venue"]
    assert record["ended_by"] == "done" and record["scores"]["success"] == 0.0
    assert record["scores"]["progress"] == 0.5  # the lookup, not the answer
    assert json.loads(record["trajectory"][0]["observation"])["venue"] == "NeurIPS"


def test_react_thinks_before_each_action_and_plan_act_plans_first(harness_run: Any) -> None:
    react = [
        "B must go on C first.",
        call("move", block="B", destination="C"),
        "Now A onto B.",
        call("move", block="A", destination="B"),
    ]
    manifest = agent_manifest("blocks", react, episodes=["blocks-2"], agent="react")
    record = episodes(harness_run(manifest).run_dir)["blocks-2"]
    assert [s["thought"] for s in record["trajectory"]] == [react[0], react[2]]
    assert record["scores"]["success"] == 1.0 and record["scores"]["steps"] == 2.0
    plan = ["1. B on C. 2. A on B.", *react[1::2]]
    manifest = agent_manifest("blocks", plan, episodes=["blocks-2"], agent="plan_act")
    record = episodes(harness_run(manifest, out="plan").run_dir)["blocks-2"]
    assert record["agent_notes"] == {"plan": plan[0]} and record["scores"]["success"] == 1.0


def test_the_report_shows_each_episode_s_trajectory(harness_run: Any) -> None:
    manifest = agent_manifest("blocks", [call("look")], episodes=["blocks-1"], max_steps=2)
    result = harness_run(manifest)
    page = (result.run_dir / "report.html").read_text()
    assert "Agent episodes" in page and "agent / s / blocks-1: goal not reached" in page
    assert page.count("<td>A is on the table; B is on the table</td>") == 2


# --- failures and resumption ----------------------------------------------------------------


class Exploding(Environment):
    """An environment whose second episode raises inside step()."""

    def episodes(self) -> list[dict[str, Any]]:
        return [{"id": "calm"}, {"id": "boom"}, {"id": "calm-too"}]

    def tools(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": "poke", "parameters": {}}}]

    def reset(self, task_id: str, seed: int | None) -> tuple[str, str]:
        self.task_id = task_id
        return "ready", "poke once"

    def step(self, action: ToolCall) -> StepResult:
        if self.task_id == "boom":
            raise RuntimeError("the simulator crashed")
        return StepResult("poked", 1.0, done=True, success=True)


class FlagParams(Params):
    """Where the flag file is."""

    flag: str = param(description="While this file exists, the second request stops the run.")


class StopsWhenFlagged(Backend):
    """Answers poke(); stops the run at its second request while a flag file exists (a kill
    in the middle of an episode's turns)."""

    def __init__(self, params: Any, context: Any) -> None:
        super().__init__(params, context)
        self.count = 0

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.count += 1
        if self.count == 2 and Path(self.params.flag).exists():
            raise StopRun("killed mid-episode")
        return ChatResponse(text=None, tool_calls=(ToolCall("poke", {}),))


class TestParts:
    @hookimpl
    def register_environments(self, register: Any) -> None:
        register("exploding", Exploding)

    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("stops_when_flagged", StopsWhenFlagged, params=FlagParams)


@pytest.fixture
def host() -> Any:
    return make_host(TestParts())


def write(path: Path, manifest: dict[str, Any]) -> Path:
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return path


def test_an_environment_that_raises_fails_that_episode_only(tmp_path: Path, host: Any) -> None:
    manifest = agent_manifest("exploding", [call("poke")])
    result = run_manifest(write(tmp_path / "m.json", manifest), host, tmp_path / "run", False)
    records = episodes(result.run_dir)
    assert records["boom"]["error"] == "RuntimeError: the simulator crashed"
    assert records["calm"]["scores"]["success"] == records["calm-too"]["scores"]["success"] == 1
    assert result.status == "finished"


def test_an_episode_killed_midway_is_replayed_once_on_resume(tmp_path: Path, host: Any) -> None:
    flag = tmp_path / "flag"
    flag.write_text("stop")
    manifest = agent_manifest("exploding", [])
    manifest["backends"] = [{"type": "stops_when_flagged", "id": "s", "flag": str(flag)}]
    path = write(tmp_path / "m.json", manifest)
    with pytest.raises(StopRun, match="killed mid-episode"):
        run_manifest(path, host, tmp_path / "run", progress=False)
    assert list(episodes(tmp_path / "run")) == ["calm"]
    flag.unlink()
    again = run_manifest(path, host, tmp_path / "run", progress=False)
    assert (again.played, again.skipped) == (2, 1)
    lines = (tmp_path / "run" / "samples.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["sample_id"] for line in lines) == ["boom", "calm", "calm-too"]


class TwoTurns(Environment):
    """A conversation: a reply in words brings the next user turn, and a tool appears then."""

    def episodes(self) -> list[dict[str, Any]]:
        return [{"id": "chat"}]

    def tools(self) -> list[dict[str, Any]]:
        names = ["first"] + (["second"] if self.turn > 0 else [])
        return [{"type": "function", "function": {"name": n, "parameters": {}}} for n in names]

    def reset(self, task_id: str, seed: int | None) -> tuple[str, str]:
        self.turn = 0
        return "turn 1", "do what each turn asks"

    def step(self, action: ToolCall) -> StepResult:
        return StepResult(f"{action.name} ran", 0.5 * self.turn)

    def respond(self, text: str) -> StepResult | None:
        self.turn += 1
        if self.turn == 2:
            return StepResult("thanks", 1.0, done=True, success=True)
        return StepResult("turn 2: now call second", 0.5)


def test_a_conversational_environment_takes_words_as_the_end_of_a_turn(tmp_path: Path) -> None:
    class Parts:
        @hookimpl
        def register_environments(self, register: Any) -> None:
            register("two_turns", TwoTurns)

    host = make_host(Parts())
    script = [call("first"), "done with turn 1", call("second"), "all done"]
    result = run_manifest(
        write(tmp_path / "m.json", agent_manifest("two_turns", script)),
        host,
        tmp_path / "run",
        False,
    )
    record = episodes(result.run_dir)["chat"]
    assert [s["observation"] for s in record["trajectory"]] == [
        "first ran",
        "turn 2: now call second",
        "second ran",
        "thanks",
    ]
    assert record["ended_by"] == "success" and record["scores"]["success"] == 1.0


def test_unreadable_words_can_be_an_answer_that_ends_a_turn(tmp_path: Path) -> None:
    class Parts:
        @hookimpl
        def register_environments(self, register: Any) -> None:
            register("two_turns", TwoTurns)

    script = ["[first()]", "Done: I called it.", "[second()]", "All done."]
    manifest = agent_manifest("two_turns", script)
    manifest["tasks"][0]["agent"] = {"type": "act", "mode": "prompt", "on_format_error": "answer"}
    result = run_manifest(
        write(tmp_path / "m.json", manifest), make_host(Parts()), tmp_path / "r", False
    )
    record = episodes(result.run_dir)["chat"]
    assert record["ended_by"] == "success" and record["scores"]["format_errors"] == 0.0
    assert record["trajectory"][1]["unread"].startswith("syntax")


class FollowsPrinciples(Backend):
    """A stand-in executor that obeys a principle 'call X first' when its tool says so: the
    principles are read from the tool documentation it is sent, nowhere else."""

    def chat(self, request: ChatRequest) -> ChatResponse:
        if not request.tools:  # a ReAct thought
            return ChatResponse(text="thinking")
        first = [
            t["function"]["name"]
            for t in request.tools
            if "call this first" in str(t["function"].get("description", "")).lower()
        ]
        said = " ".join(str(m.content) for m in request.messages if m.role == "assistant")
        if first and f'"{first[0]}"' not in said:  # not called yet
            return ChatResponse(text=None, tool_calls=(ToolCall(first[0], {}),))
        return ChatResponse(
            text=None, tool_calls=(ToolCall("move", {"block": "A", "destination": "B"}),)
        )


def test_pract_shows_each_action_s_principle_and_it_changes_the_actions(tmp_path: Path) -> None:
    class Parts:
        @hookimpl
        def register_backends(self, register: Any) -> None:
            register("follows_principles", FollowsPrinciples)

    host = make_host(Parts())

    def first_action(agent: dict[str, Any], out: str) -> str:
        manifest = agent_manifest("blocks", [], episodes=["blocks-1"], agent=agent, max_steps=2)
        manifest["backends"] = [{"type": "follows_principles", "id": "s"}]
        result = run_manifest(
            write(tmp_path / f"{out}.json", manifest), host, tmp_path / out, False
        )
        return str(episodes(result.run_dir)["blocks-1"]["trajectory"][0]["actions"][0]["name"])

    principled = {"type": "pract", "principles": {"look": "Call this first, to see the blocks."}}
    assert first_action(principled, "with") == "look"
    assert first_action({"type": "pract"}, "without") == "move"
    assert first_action({"type": "react"}, "react") == "move"
    saved = tmp_path / "principles.json"
    saved.write_text(json.dumps({"principles": {"look": "Call this first."}}))
    assert first_action({"type": "pract", "principles_file": str(saved)}, "file") == "look"


@pytest.mark.parametrize(
    ("task", "problem"),
    [
        ({"environment": "todos"}, "tasks[0].environment: unknown environment 'todos'; did you"),
        (
            {"environment": "todo", "agent": {"type": "react", "thougth_tokens": 9}},
            "tasks[0].agent.thougth_tokens: unknown key; did you mean 'thought_tokens'?",
        ),
        ({"environment": {"type": "blocks", "data": "nofile.json"}}, "tasks[0].environment.data"),
    ],
)
def test_a_bad_environment_or_strategy_is_refused_at_validation(
    tmp_path: Path, task: dict[str, Any], problem: str
) -> None:
    from harness import ManifestError
    from harness import load_manifest

    manifest = agent_manifest(task.pop("environment"), [call("look")], **task)
    with pytest.raises(ManifestError) as caught:
        load_manifest(write(tmp_path / "m.json", manifest), make_host())
    assert problem in caught.value.problems[0] and caught.value.exit_code == 2
