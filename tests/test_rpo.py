"""RPO (PRAct's Reflective Principle Optimization) with scripted reflector and optimizer: the
learned principles change what the executor does on held-out episodes, RPO-Batch calls the
optimizer once per batch and RPO-Traj once per trajectory, Self-RPO never shows the reward,
best-on-validation selection, overlapping splits refused, and a run killed during
optimization that resumes without playing a finished trajectory again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_llama
from test_agents import FollowsPrinciples as Follows

from harness import Backend
from harness import ChatRequest
from harness import ChatResponse
from harness import ManifestError
from harness import Params
from harness import StopRun
from harness import ToolCall
from harness import hookimpl
from harness import load_manifest
from harness import param
from harness import run_manifest
from harness.testing import make_host

LOOK_FIRST = {"look": "Call this first, to see the blocks."}


class Calls(Params):
    """Where calls are logged, and when to stop the run."""

    log: str = param(description="A JSON-lines file each request is appended to.")
    principles: dict[str, str] = param({}, description="What the optimizer proposes.")
    stop_flag: str | None = param(None, description="While this file exists, stop ...")
    stop_at: int = param(0, description="... at this optimizer call (1-based).")


class Logged(Backend):
    """Appends (backend id, sample id, prompt) of every request to the log file."""

    def note(self, request: ChatRequest) -> None:
        line = {
            "backend": self.context.id,
            "sample_id": request.sample_id,
            "prompt": request.messages[-1].content,
            "tools": [t["function"]["name"] for t in request.tools or ()],
        }
        with open(self.params.log, "a", encoding="utf-8") as stream:
            stream.write(json.dumps(line) + "\n")


class FollowsPrinciples(Logged):
    """The stand-in executor of test_agents (it calls an action first when the action's
    documentation, where pract puts principles, says 'call this first'), logged."""

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.note(request)
        return Follows.chat(self, request)


class ScriptedHelper(Logged):
    """Reflector and optimizer in one: a verdict and a critique, or the principles it was
    given (as a set_principles call when offered the tool, else as JSON in text)."""

    def __init__(self, params: Any, context: Any) -> None:
        super().__init__(params, context)
        self.optimizations = 0

    def chat(self, request: ChatRequest) -> ChatResponse:
        self.note(request)
        if "/reflect/" in str(request.sample_id):
            return ChatResponse(text="Verdict: failure. The agent moved blindly; look first.")
        self.optimizations += 1
        flagged = self.params.stop_flag and Path(self.params.stop_flag).exists()
        if flagged and self.optimizations == self.params.stop_at:
            raise StopRun("killed during optimization")
        if request.tools:
            call = ToolCall("set_principles", dict(self.params.principles))
            return ChatResponse(text=None, tool_calls=(call,))
        return ChatResponse(text="Here: " + json.dumps(self.params.principles) + " done.")


class Parts:
    @hookimpl
    def register_backends(self, register: Any) -> None:
        register("follows_principles", FollowsPrinciples, params=Calls)
        register("scripted_helper", ScriptedHelper, params=Calls)


@pytest.fixture
def host() -> Any:
    return make_host(Parts())


def rpo_manifest(log: Path, principles: dict[str, str], **task: Any) -> dict[str, Any]:
    helper = {"type": "scripted_helper", "log": str(log), "principles": principles}
    entry = {
        "type": "rpo",
        "id": "rpo",
        "environment": "blocks",
        "train": ["blocks-1", "blocks-2"],
        "test": ["blocks-unstack", "blocks-reverse"],
        "batch_size": 2,
        "shuffle": False,
        "max_steps": 2,
        "reflector": helper,
        "optimizer": helper,
        **task,
    }
    return {
        "name": "rpo",
        "backends": [{"type": "follows_principles", "id": "exec", "log": str(log)}],
        "tasks": [entry],
    }


def run(tmp_path: Path, host: Any, manifest: dict[str, Any], name: str) -> Any:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")
    return run_manifest(path, host, tmp_path / name, progress=False)


def records(run_dir: Path) -> dict[str, dict[str, Any]]:
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    return {r["sample_id"]: r for r in map(json.loads, lines)}


def first_actions(run_dir: Path) -> dict[str, str]:
    return {
        sample: record["trajectory"][0]["actions"][0]["name"]
        for sample, record in records(run_dir).items()
    }


def logged(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_learned_principles_change_the_executor_s_actions_on_held_out_episodes(
    tmp_path: Path, host: Any
) -> None:
    learned = run(tmp_path, host, rpo_manifest(tmp_path / "a.jsonl", LOOK_FIRST), "learned")
    # the same run whose optimizer proposes nothing usable: the initial (empty) principles stay
    kept = run(tmp_path, host, rpo_manifest(tmp_path / "b.jsonl", {}), "kept")
    assert first_actions(learned.run_dir) == {"blocks-unstack": "look", "blocks-reverse": "look"}
    assert first_actions(kept.run_dir) == {"blocks-unstack": "move", "blocks-reverse": "move"}
    assert {r["principles_version"] for r in records(learned.run_dir).values()} == {1}

    folder = learned.run_dir / "rpo" / "rpo" / "exec"
    v1 = json.loads((folder / "v1.json").read_text())
    assert v1["principles"] == LOOK_FIRST and v1["changed"]["added"] == ["look"]
    assert [t["episode"] for t in v1["trajectories"]] == ["blocks-1", "blocks-2"]
    assert [r["episode"] for r in v1["reflections"]] == ["blocks-1", "blocks-2"]
    assert all(t["steps"][0]["actions"][0]["name"] == "move" for t in v1["trajectories"])
    kept_v1 = json.loads((kept.run_dir / "rpo" / "rpo" / "exec" / "v1.json").read_text())
    assert kept_v1["principles"] == {} and "error" in kept_v1["optimizer"]

    # the saved principles load into pract as a file, and act as they did in the run
    saved = folder / "principles.json"
    assert json.loads(saved.read_text())["version"] == 1
    agent = {
        "type": "agent",
        "id": "agent",
        "environment": "blocks",
        "episodes": ["blocks-unstack"],
        "max_steps": 2,
        "agent": {"type": "pract", "principles_file": str(saved)},
    }
    manifest = {"name": "reuse", "backends": rpo_manifest(tmp_path / "c.jsonl", {})["backends"]}
    reused = run(tmp_path, host, {**manifest, "tasks": [agent]}, "reused")
    assert first_actions(reused.run_dir) == {"blocks-unstack": "look"}
    report = (learned.run_dir / "report.html").read_text()
    assert "Principle optimization (RPO)" in report and "Call this first" in report


@pytest.mark.parametrize(("method", "optimizer_calls"), [("batch", 4), ("traj", 8)])
def test_rpo_batch_calls_the_optimizer_once_per_batch(
    tmp_path: Path, host: Any, method: str, optimizer_calls: int
) -> None:
    log = tmp_path / "calls.jsonl"
    train = ["blocks-1", "blocks-2", "blocks-unstack", "blocks-reverse"]
    manifest = rpo_manifest(log, LOOK_FIRST, train=train, test=["blocks-slip"], epochs=2)
    manifest["tasks"][0].update(method=method, optimizer_mode="constrained")
    result = run(tmp_path, host, manifest, method)
    helper = [c for c in logged(log) if c["backend"] == "rpo.helper"]
    optimizations = [c for c in helper if c["sample_id"].endswith("/optimize")]
    reflections = [c for c in logged(log) if "/reflect/" in str(c["sample_id"])]
    assert len(optimizations) == optimizer_calls  # 2 epochs x 4 episodes, in batches of 2 or 1
    assert len(reflections) == 8  # one per trajectory, whatever the method
    assert all(c["tools"] == ["set_principles"] for c in optimizations)
    folder = result.run_dir / "rpo" / "rpo" / "exec"
    versions = sorted(folder.glob("v*.json"))
    assert len(versions) == optimizer_calls + 1
    per_version = 8 // optimizer_calls
    last = json.loads((folder / f"v{optimizer_calls}.json").read_text())
    assert len(last["trajectories"]) == len(last["reflections"]) == per_version
    # every reflection of the batch reaches its one optimizer call
    assert optimizations[0]["prompt"].count("Reflection ") == per_version


def test_self_rpo_never_tells_the_reflector_the_reward(tmp_path: Path, host: Any) -> None:
    log = tmp_path / "calls.jsonl"
    manifest = rpo_manifest(log, LOOK_FIRST, max_steps=1)
    run(tmp_path, host, manifest, "reward")
    told = [c["prompt"] for c in logged(log) if "/reflect/" in str(c["sample_id"])]
    assert all("Reward from the environment: " in p for p in told)
    assert "Reward from the environment: 1.00" in told[0]  # blocks-1: one move reaches it

    log.unlink()
    manifest = rpo_manifest(log, LOOK_FIRST, feedback="self", max_steps=1)
    result = run(tmp_path, host, manifest, "self")
    blind = [c["prompt"] for c in logged(log) if "/reflect/" in str(c["sample_id"])]
    assert blind and all("Reward" not in p and "goal was reached" not in p for p in blind)
    assert all("Verdict: success" in p for p in blind)  # it is asked to judge
    # blocks-1 reached its goal in its one turn, blocks-2 ran out of turns: told alike
    assert all(p.count("Ended: after 1 turn(s).") == 1 for p in blind)
    v1 = json.loads((result.run_dir / "rpo" / "rpo" / "exec" / "v1.json").read_text())
    assert {r["verdict"] for r in v1["reflections"]} == {"failure"}


def test_best_on_validation_keeps_the_version_that_scored_best(tmp_path: Path, host: Any) -> None:
    # one turn per episode: looking first wastes it, so v1 (look first) scores below v0
    task = {"validation": ["blocks-1"], "train": ["blocks-2"], "select": "best", "max_steps": 1}
    result = run(tmp_path, host, rpo_manifest(tmp_path / "c.jsonl", LOOK_FIRST, **task), "best")
    folder = result.run_dir / "rpo" / "rpo" / "exec"
    scores = [json.loads((folder / f"v{k}.json").read_text())["validation"] for k in (0, 1)]
    assert scores[0]["reward"] == 1.0 and scores[1]["reward"] == 0.0
    selected = json.loads((folder / "principles.json").read_text())
    assert (selected["version"], selected["selected_by"]) == (0, "best")
    assert set(first_actions(result.run_dir).values()) == {"move"}


@pytest.mark.parametrize(
    ("task", "problem"),
    [
        ({"test": ["blocks-1", "blocks-slip"]}, "test: shares episode(s) blocks-1 with train"),
        ({"validation": ["blocks-2"]}, "validation: shares episode(s) blocks-2 with train"),
        ({"select": "best"}, "select: best needs validation episodes"),
        ({"agent": "react"}, "agent: 'react' has no principles to learn; use pract"),
        ({"train": []}, "train: no episode to learn from"),
        ({"train": ["blocks-1", "blocks-1"]}, "train: lists episode blocks-1 twice"),
        (
            {"optimizer": {"type": "scripted_helpr"}},
            "tasks[0].optimizer: unknown backend 'scripted_helpr'; did you mean",
        ),
    ],
)
def test_a_bad_rpo_entry_is_refused_at_validation(
    tmp_path: Path, host: Any, task: dict[str, Any], problem: str
) -> None:
    manifest = rpo_manifest(tmp_path / "calls.jsonl", LOOK_FIRST, **task)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, host)
    assert any(problem in line for line in caught.value.problems), caught.value.problems
    assert caught.value.exit_code == 2


def test_a_prompt_file_with_an_unknown_placeholder_is_refused(tmp_path: Path, host: Any) -> None:
    prompt = tmp_path / "reflector.txt"
    prompt.write_text("Judge $trajectory against $rubric.")
    manifest = rpo_manifest(tmp_path / "calls.jsonl", LOOK_FIRST, reflector_prompt=str(prompt))
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(
        ManifestError, match=r"reflector_prompt: reflector.txt uses unknown placeholder \$rubric"
    ):
        load_manifest(path, host)


def test_a_self_rpo_prompt_cannot_ask_for_the_reward(tmp_path: Path, host: Any) -> None:
    prompt = tmp_path / "reflector.txt"
    prompt.write_text("$trajectory scored $reward. Costs $5.")
    task = {"reflector_prompt": str(prompt), "feedback": "self"}
    manifest = rpo_manifest(tmp_path / "calls.jsonl", LOOK_FIRST, **task)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, host)
    problems = " | ".join(caught.value.problems)
    assert "reflector_prompt: reflector.txt uses unknown placeholder $reward" in problems
    assert "reflector_prompt: reflector.txt has a lone $; write $$" in problems


def test_part_ids_become_safe_folder_names() -> None:
    from harness_plugins.agents._rpo import folder_name

    assert folder_name("smollm2-135m") == "smollm2-135m"
    for unsafe in ("openai/gpt-4o", "/etc/x", "..", ".hidden", "a b"):
        name = folder_name(unsafe)
        assert "/" not in name and not name.startswith(".") and " " not in name
    assert folder_name("a/b") != folder_name("a-b")


class BrokenHelper(Backend):
    """A reflector whose service is down."""

    calls = 0

    def chat(self, request: ChatRequest) -> ChatResponse:
        BrokenHelper.calls += 1
        raise RuntimeError("503 from the reflector")


def test_a_failed_training_fails_the_held_out_episodes_once(tmp_path: Path) -> None:
    class Broken:
        @hookimpl
        def register_backends(self, register: Any) -> None:
            register("broken_helper", BrokenHelper)

    host = make_host(Parts(), Broken())
    manifest = rpo_manifest(tmp_path / "calls.jsonl", LOOK_FIRST)
    manifest["tasks"][0]["reflector"] = {"type": "broken_helper"}
    result = run(tmp_path, host, manifest, "broken")
    errors = {r["error"] for r in records(result.run_dir).values()}
    assert errors == {"RuntimeError: 503 from the reflector"} and BrokenHelper.calls == 1


def test_a_run_killed_during_optimization_resumes_without_replaying(
    tmp_path: Path, host: Any
) -> None:
    log, flag = tmp_path / "calls.jsonl", tmp_path / "flag"
    flag.write_text("stop")
    train = ["blocks-1", "blocks-2", "blocks-unstack", "blocks-reverse"]
    manifest = rpo_manifest(log, LOOK_FIRST, train=train, test=["blocks-slip"])
    helper = dict(manifest["tasks"][0]["optimizer"], stop_flag=str(flag), stop_at=2)
    manifest["tasks"][0].update(optimizer=helper, reflector=helper)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(StopRun, match="killed during optimization"):
        run_manifest(path, host, tmp_path / "run", progress=False)
    folder = tmp_path / "run" / "rpo" / "rpo" / "exec"
    assert sorted(p.name for p in folder.glob("v*.json")) == ["v0.json", "v1.json"]
    before = {p.name: p.read_text() for p in folder.glob("v*.json")}
    played = {c["sample_id"] for c in logged(log) if c["backend"] == "exec"}
    assert played == set(train)  # the second batch was played and reflected on
    log.unlink()
    flag.unlink()
    with open(folder / "log.jsonl", "a") as torn:  # a line a kill cut short
        torn.write('{"kind": "trajectory", "vers')

    again = run_manifest(path, host, tmp_path / "run", progress=False)
    assert again.status == "finished"
    calls = logged(log)
    assert {c["sample_id"] for c in calls if c["backend"] == "exec"} == {"blocks-slip"}
    assert [c["sample_id"] for c in calls if c["backend"] != "exec"] == ["rpo/v1/optimize"]
    assert {p.name: p.read_text() for p in folder.glob("v[01].json")} == before
    v2 = json.loads((folder / "v2.json").read_text())
    assert [t["episode"] for t in v2["trajectories"]] == ["blocks-unstack", "blocks-reverse"]
    assert records(again.run_dir)["blocks-slip"]["principles_version"] == 2
    kept = [json.loads(line) for line in (folder / "log.jsonl").read_text().splitlines()]
    assert len(kept) == 8  # 4 trajectories and 4 reflections; the torn line is gone


def test_the_shipped_comparison_manifest_is_valid_with_disjoint_splits(host: Any) -> None:
    path = Path(__file__).resolve().parents[1] / "registry" / "manifests" / "pract.yaml"
    manifest = load_manifest(path, host)
    rpo = [e for e in manifest.tasks if e.type == "rpo"]
    assert len(rpo) == 12  # 3 environments x PRAct-T/B x Reward/Self
    assert {(e.params["method"], e.params["feedback"]) for e in rpo} == {
        (m, f) for m in ("traj", "batch") for f in ("reward", "self")
    }
    baselines = {e.id: e.params["episodes"] for e in manifest.tasks if e.type == "agent"}
    for entry in rpo:  # every entry of an environment plays the same held-out episodes
        environment = entry.params["environment"]
        assert baselines[f"{environment}-act"] == entry.params["test"]
        assert not set(entry.params["train"]) & set(entry.params["test"])


@pytest.mark.slow
@needs_llama
def test_rpo_on_smollm2_learns_a_version_and_plays_the_held_out_episode(
    tmp_path: Path, host: Any
) -> None:
    """The embedded model as executor, reflector and optimizer (its rewrite forced into a
    set_principles call by llama.cpp's grammar): a version is written from a real reflection
    and the held-out episode plays with it."""
    entry = {
        "type": "rpo",
        "environment": "blocks",
        "train": ["blocks-1"],
        "test": ["blocks-2"],
        "max_steps": 2,
        "optimizer_mode": "constrained",
        "reflection_tokens": 48,
        "optimizer_tokens": 160,
        "agent": {"type": "pract", "mode": "constrained", "thought_tokens": 24},
    }
    backend = {"type": "llamacpp", "id": "smol", "model": "smollm2-135m-instruct"}
    manifest = {"name": "rpo-smol", "backends": [backend], "tasks": [entry]}
    result = run(tmp_path, host, manifest, "smol")
    folder = result.run_dir / "rpo" / "rpo" / "smol"
    v1 = json.loads((folder / "v1.json").read_text())
    assert v1["reflections"][0]["text"]  # the model wrote a critique
    (call,) = v1["optimizer"]["calls"]  # the grammar forces one set_principles call
    assert call["name"] == "set_principles" and set(call["arguments"]) == {"look", "move"}
    written = {k: v.strip() for k, v in call["arguments"].items() if v.strip()}
    assert v1["principles"] == (written or {}) or "error" in v1["optimizer"]
    record = records(result.run_dir)["blocks-2"]
    assert record["principles_version"] == 1 and not record["error"] and record["trajectory"]
