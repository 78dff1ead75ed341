"""RPO, Reflective Principle Optimization (PRAct's learning loop), as the ``rpo`` task.

Before the first held-out episode plays on an executor backend, the task learns principles
on the training episodes: for each epoch, for each batch of them (one episode a batch with
``method: traj``), the ``pract`` executor plays every episode of the batch with the current
principles P_k (execution); the reflector critiques each trajectory, given the environment's
reward (Reward-RPO) or judging success itself (Self-RPO) (reflection); the optimizer rewrites
P_k into P_k+1 from all the batch's critiques in one call (optimization).

Everything is kept in ``<run dir>/rpo/<task id>/<backend id>/``: ``v<k>.json`` for every
version (its principles, and the trajectories, reflections and optimizer answer that
produced it), ``log.jsonl`` with each trajectory and reflection as it finishes (so a run
killed mid-batch resumes without playing a finished episode again) and ``principles.json``,
the principles the held-out episodes are played with (the last version, or the best on the
validation episodes), in the file format ``pract``'s ``principles_file`` reads.

Model output is data: the optimizer's principles are parsed as JSON (or read from a
``set_principles`` call), kept only for known actions and cut to ``max_principle_chars``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
from dataclasses import dataclass
from dataclasses import replace
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from harness import Agent
from harness import Backend
from harness import BuildContext
from harness import ChatRequest
from harness import GenerationParams
from harness import InputError
from harness import Message
from harness import Outcome
from harness import Sample

from . import RpoTaskParams
from ._strategies import load_principles
from ._task import AgentTask

log = logging.getLogger("harness.rpo")

JSON = dict[str, Any]
PROMPTS = ("reflector-reward.v1.txt", "reflector-self.v1.txt", "optimizer.v1.txt")
REFLECTOR_FIELDS = {"actions", "principles", "goal", "trajectory"}  # + reward in Reward-RPO
OPTIMIZER_FIELDS = {"actions", "principles", "count", "reflections", "answer_format"}
SET_PRINCIPLES = "set_principles"


def shipped_prompt(name: str) -> Path:
    """A prompt file the project ships (``registry/prompts/rpo/``)."""
    return Path(str(resources.files("harness_registry") / "prompts" / "rpo" / name))


def prompt_files(params: RpoTaskParams) -> tuple[Path, Path]:
    """The reflector's and the optimizer's prompt files (the user's, else the shipped ones)."""
    reflector = params.reflector_prompt or shipped_prompt(f"reflector-{params.feedback}.v1.txt")
    optimizer = params.optimizer_prompt or shipped_prompt("optimizer.v1.txt")
    return Path(reflector), Path(optimizer)


def reflector_fields(feedback: str) -> set[str]:
    """What a reflector prompt may use: Self-RPO's never gets the reward."""
    return REFLECTOR_FIELDS | ({"reward"} if feedback == "reward" else set())


def template_problems(field: str, path: Path, allowed: set[str]) -> list[str]:
    """Placeholders a prompt file uses that RPO does not fill, and stray ``$`` signs (which
    ``string.Template`` would refuse half-way through a training)."""
    template = Template(path.read_text(encoding="utf-8"))
    problems = []
    for match in template.pattern.finditer(template.template):
        name = match.group("named") or match.group("braced")
        if match.group("invalid") is not None:
            problems.append(f"{field}: {path.name} has a lone $; write $$ for a dollar sign")
        elif name and name not in allowed:
            known = ", ".join(f"${a}" for a in sorted(allowed))
            problems.append(
                f"{field}: {path.name} uses unknown placeholder ${name} (known: {known})"
            )
    return problems


# --- the schedule ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    """Training step ``index`` (0-based): the episodes played with version ``index``."""

    index: int
    epoch: int
    episodes: tuple[str, ...]


def schedule(
    train: list[str], size: int, epochs: int, seed: int | None, shuffle: bool
) -> list[Batch]:
    """Every batch of the training, in order: each epoch goes through ``train`` (shuffled with
    the run's seed and the epoch, when asked) in batches of ``size``. The same inputs give the
    same schedule, which is what lets a resumed run find its place."""
    batches: list[Batch] = []
    for epoch in range(epochs):
        order = list(train)
        if shuffle:
            random.Random(f"{seed}:{epoch}").shuffle(order)
        for start in range(0, len(order), size):
            batches.append(Batch(len(batches), epoch, tuple(order[start : start + size])))
    return batches


# --- the run directory's record ---------------------------------------------------------------


class Ledger:
    """One training's files (a task on one executor backend); in memory when there is no run
    directory (a task built by hand)."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self._log: list[JSON] = []
        self._versions: list[JSON] = []
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
            self._versions = self._read_versions(folder)
            self._log = self._read_log(folder / "log.jsonl")

    @staticmethod
    def _read_versions(folder: Path) -> list[JSON]:
        versions: list[JSON] = []
        while (folder / f"v{len(versions)}.json").exists():
            path = folder / f"v{len(versions)}.json"
            versions.append(json.loads(path.read_text(encoding="utf-8")))
        return versions

    @classmethod
    def _read_log(cls, path: Path) -> list[JSON]:
        """The log's entries. A line cut by a kill (or otherwise unreadable) is dropped, and
        the file rewritten without it, so later lines never append to a fragment; what it
        held is played again."""
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        entries = [e for e in map(_entry, lines) if e is not None]
        if len(entries) != len(lines):
            text = "".join(json.dumps(e, ensure_ascii=False, default=str) + "\n" for e in entries)
            cls._replace(path, text)
        return entries

    @property
    def versions(self) -> list[JSON]:
        return self._versions

    def save_version(self, doc: JSON) -> None:
        """Write (or rewrite, when its validation is added) version ``doc["version"]``."""
        k = int(doc["version"])
        self._versions[k:] = [doc]
        self._write(f"v{k}.json", doc)

    def found(self, kind: str, version: int, episode: str) -> JSON | None:
        return next(
            (
                e
                for e in self._log
                if (e["kind"], e["version"], e["episode"]) == (kind, version, episode)
            ),
            None,
        )

    def add(self, entry: JSON) -> None:
        """Append one finished trajectory or reflection (flushed and synced at once)."""
        self._log.append(entry)
        if self.folder is None:
            return
        with open(self.folder / "log.jsonl", "a", encoding="utf-8") as stream:
            stream.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")
            stream.flush()
            os.fsync(stream.fileno())

    def save_selected(self, doc: JSON) -> None:
        self._write("principles.json", doc)

    def _write(self, name: str, doc: JSON) -> None:
        if self.folder is not None:
            text = json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n"
            self._replace(self.folder / name, text)

    @staticmethod
    def _replace(path: Path, text: str) -> None:
        """Write ``path`` whole or not at all (a temporary file, synced, then renamed)."""
        temporary = path.with_name(f".{path.name}.tmp")
        with open(temporary, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)


def _entry(line: str) -> JSON | None:
    """One log line, if it is a whole entry."""
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    keys = ("kind", "version", "episode")
    return entry if isinstance(entry, dict) and all(k in entry for k in keys) else None


# --- the task -------------------------------------------------------------------------------


class RpoTask(AgentTask):
    """Learn principles on the training episodes, then play the held-out ones with them."""

    params: RpoTaskParams  # type: ignore[assignment]

    def __init__(self, params: RpoTaskParams, context: BuildContext) -> None:
        super().__init__(params, context)  # type: ignore[arg-type]
        self.initial = load_principles(self.agent.params)
        self.reflector_path, self.optimizer_path = prompt_files(params)
        self.reflector_template = Template(self.reflector_path.read_text(encoding="utf-8"))
        self.optimizer_template = Template(self.optimizer_path.read_text(encoding="utf-8"))
        self.actions = {t["function"]["name"]: t["function"] for t in self.environment.tools()}
        size = 1 if params.method == "traj" else params.batch_size
        self.batches = schedule(params.train, size, params.epochs, context.seed, params.shuffle)
        self._learned: dict[str, tuple[int, dict[str, str]]] = {}
        self._failed: dict[str, Exception] = {}
        self._lock = threading.Lock()

    def _select(self, episodes: list[JSON]) -> list[JSON]:
        """The held-out episodes (``test``, else every one in neither train nor validation);
        the training and validation ids must be the environment's."""
        params: RpoTaskParams = self.params
        known = {str(e["id"]) for e in episodes}
        for field_name in ("train", "validation", "test"):
            unknown = [i for i in getattr(params, field_name) or () if i not in known]
            if unknown:
                raise InputError(
                    f"{field_name}: the environment has no episode {unknown[0]!r}; it has "
                    f"{', '.join(sorted(known)[:10])}"
                )
        seen = set(params.train) | set(params.validation)
        test = params.test if params.test is not None else [i for i in known if i not in seen]
        chosen = [e for e in episodes if str(e["id"]) in set(test)]
        return chosen[: params.limit] if params.limit else chosen

    def info(self) -> JSON:
        params: RpoTaskParams = self.params
        return {
            **super().info(),
            "rpo": {
                "method": params.method,
                "feedback": params.feedback,
                "batch_size": 1 if params.method == "traj" else params.batch_size,
                "epochs": params.epochs,
                "train": list(params.train),
                "validation": list(params.validation),
                "select": params.select,
                "versions": len(self.batches) + 1,
                "prompts": {
                    "reflector": self.reflector_path.stem,
                    "optimizer": self.optimizer_path.stem,
                },
            },
        }

    def data_files(self) -> list[Path]:
        """The prompts, the initial principles and the environment's data: their hashes go
        into the run's provenance."""
        files = [self.reflector_path, self.optimizer_path]
        if getattr(self.agent.params, "principles_file", None):
            files.append(Path(self.agent.params.principles_file))
        environment_files = getattr(self.environment, "data_files", None)
        return files + (list(environment_files()) if callable(environment_files) else [])

    def play(self, sample: Sample, backend: Any) -> Outcome:
        version, principles = self.learned(backend)
        outcome = self.play_episode(self.executor(principles), sample, backend)
        fields = {**outcome.fields, "principles_version": version}
        return Outcome(outcome.output, outcome.calls, outcome.responses, outcome.error, fields)

    def executor(self, principles: dict[str, str]) -> Agent:
        """The ``pract`` agent of the manifest entry with these principles."""
        spec = self.params.agent
        entry: JSON = {"type": spec} if isinstance(spec, str) else dict(spec)
        entry.update(principles=dict(principles), principles_file=None)
        agent: Agent = self.context.build("agent", entry)
        return agent

    # --- training -------------------------------------------------------------------------

    def learned(self, backend: Backend) -> tuple[int, dict[str, str]]:
        """The selected version and its principles for this executor, training first (or
        resuming the training) the first time it is asked."""
        key = _backend_id(backend)
        with self._lock:
            if key in self._failed:  # the samples waiting for it fail alike, without retrying
                raise self._failed[key]
            if key not in self._learned:
                try:
                    self._learned[key] = Training(self, backend, self._ledger(key)).run()
                except Exception as exc:
                    self._failed[key] = exc
                    raise
            return self._learned[key]

    def _ledger(self, backend_id: str) -> Ledger:
        run_dir = self.context.run_dir
        if run_dir is None:
            return Ledger(None)
        return Ledger(run_dir / "rpo" / folder_name(self.context.id) / folder_name(backend_id))

    def helper(self, role: str, executor: Backend) -> Backend:
        """The reflector's or optimizer's backend: the entry's, else the executor."""
        spec = getattr(self.params, role)
        if spec is None:
            return executor
        built: Backend = self.context.build("backend", spec, id=f"{self.context.id}.helper")
        return built


def folder_name(part_id: str) -> str:
    """A part id as one safe folder name: itself when it is plain (letters, digits, ``.-_``,
    not starting with a dot), else its plain characters and a short hash of the id."""
    if re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}", part_id):
        return part_id
    plain = re.sub(r"[^A-Za-z0-9._-]+", "-", part_id).strip(".-")[:60]
    return f"{plain or 'part'}-{hashlib.sha256(part_id.encode()).hexdigest()[:8]}"


def _backend_id(backend: Backend) -> str:
    context = getattr(backend, "context", None)
    return str(getattr(context, "id", None) or type(backend).__name__)


class Training:
    """One RPO training: a task's schedule on one executor backend, resumed from its ledger."""

    def __init__(self, task: RpoTask, executor: Backend, ledger: Ledger) -> None:
        self.task, self.executor, self.ledger = task, executor, ledger
        self.params: RpoTaskParams = task.params
        self.reflector = task.helper("reflector", executor)
        self.optimizer = task.helper("optimizer", executor)
        self.where = f"rpo {task.context.id} ({_backend_id(executor)})"

    def run(self) -> tuple[int, dict[str, str]]:
        if not self.ledger.versions:
            ids = {"task": self.task.context.id, "backend": _backend_id(self.executor)}
            self.ledger.save_version({"version": 0, "principles": self.task.initial, **ids})
        self._validate(len(self.ledger.versions) - 1)
        for batch in self.task.batches[len(self.ledger.versions) - 1 :]:
            self._step(batch)
            self._validate(batch.index + 1)
        return self._select()

    def _step(self, batch: Batch) -> None:
        """Execution, reflection and optimization of one batch: version index -> index + 1."""
        k = batch.index
        principles = self.ledger.versions[k]["principles"]
        trajectories, reflections = [], []
        for episode in batch.episodes:
            trajectory = self._trajectory("train", k, episode, principles)
            trajectories.append(trajectory)
            reflections.append(self._reflection(k, trajectory, principles))
        new, answer = self._optimize(k, principles, reflections)
        rewards = [t["reward"] for t in trajectories]
        self.ledger.save_version(
            {
                "version": k + 1,
                "principles": new,
                "epoch": batch.epoch,
                "batch": k,
                "trained_on": list(batch.episodes),
                "parent_train_reward": sum(rewards) / len(rewards),
                "changed": changes(principles, new),
                "optimizer": answer,
                "trajectories": trajectories,
                "reflections": reflections,
            }
        )
        log.info(
            "%s: version %d/%d from %s (reward with v%d: %.2f)",
            self.where,
            k + 1,
            len(self.task.batches),
            ", ".join(batch.episodes),
            k,
            sum(rewards) / len(rewards),
        )

    def _trajectory(self, kind: str, k: int, episode: str, principles: dict[str, str]) -> JSON:
        """A finished episode with version k's principles, played now or found in the log."""
        found = self.ledger.found(kind, k, episode)
        if found is not None:
            return found
        sample = self.task.sample({"id": episode, **self._episode_data(episode)})
        outcome = self.task.play_episode(self.task.executor(principles), sample, self.executor)
        entry = trajectory_entry(kind, k, episode, outcome, self.params.reward)
        self.ledger.add(entry)
        return entry

    def _episode_data(self, episode: str) -> JSON:
        return next((e for e in self.task.environment.episodes() if str(e["id"]) == episode), {})

    def _reflection(self, k: int, trajectory: JSON, principles: dict[str, str]) -> JSON:
        kind = "reflection" if trajectory["kind"] == "train" else "validation_reflection"
        found = self.ledger.found(kind, k, trajectory["episode"])
        if found is not None:
            return found
        told = self.params.feedback == "reward"
        fields = {
            "actions": actions_text(self.task.actions),
            "principles": principles_text(principles),
            "goal": trajectory["goal"],
            "trajectory": trajectory_text(trajectory, told),
        }
        if told:
            fields["reward"] = reward_text(trajectory, self.params.reward)
        prompt = self.task.reflector_template.substitute(fields)
        sample_id = f"rpo/v{k}/reflect/{trajectory['episode']}"
        response = self.reflector.chat(
            self._request(prompt, sample_id, self.params.reflection_tokens)
        )
        text = (response.text or "").strip()
        entry = {"kind": kind, "version": k, "episode": trajectory["episode"], "text": text}
        entry["tokens"] = (response.input_tokens or 0) + (response.output_tokens or 0)
        if self.params.feedback == "self":
            entry["verdict"] = verdict(text)
        self.ledger.add(entry)
        return entry

    def _optimize(
        self, k: int, principles: dict[str, str], reflections: list[JSON]
    ) -> tuple[dict[str, str], JSON]:
        """One optimizer call over the batch's reflections: the new principles (the old ones
        when its answer cannot be read) and what it answered."""
        mode = self.params.optimizer_mode
        prompt = self.task.optimizer_template.substitute(
            actions=actions_text(self.task.actions),
            principles=principles_text(principles),
            count=len(reflections),
            reflections=reflections_text(reflections),
            answer_format=answer_format(mode, list(self.task.actions)),
        )
        request = self._request(prompt, f"rpo/v{k}/optimize", self.params.optimizer_tokens)
        if mode != "prompt":
            tool = principles_tool(list(self.task.actions), self.params.max_principle_chars)
            choice = {"type": "function", "function": {"name": SET_PRINCIPLES}}
            one_call = replace(request.params, extra={"max_calls": 1})  # one rewrite
            request = replace(
                request, tools=(tool,), tool_choice=choice, mode=mode, params=one_call
            )
        response = self.optimizer.chat(request)
        new, answer = read_principles(
            response, principles, set(self.task.actions), self.params.max_principle_chars
        )
        answer["tokens"] = (response.input_tokens or 0) + (response.output_tokens or 0)
        return new, answer

    def _request(self, prompt: str, sample_id: str, max_tokens: int) -> ChatRequest:
        generation = GenerationParams(
            max_tokens=max_tokens, temperature=0.0, seed=self.task.context.seed
        )
        return ChatRequest(
            messages=(Message("user", prompt),),
            params=generation,
            task=self.task.context.id,
            sample_id=sample_id,
        )

    # --- validation and selection -------------------------------------------------------

    def _validate(self, k: int) -> None:
        """Version k's score on the validation episodes (once; kept in its file): the mean
        reward, and with Self-RPO the reflector's own verdicts, which are what it is
        selected by (Self-RPO never sees a reward)."""
        doc = self.ledger.versions[k]
        if not self.params.validation or "validation" in doc:
            return
        principles = doc["principles"]
        runs = [self._trajectory("validation", k, e, principles) for e in self.params.validation]
        result: JSON = {"reward": sum(r["reward"] for r in runs) / len(runs), "episodes": len(runs)}
        result["per_episode"] = {r["episode"]: {"reward": r["reward"]} for r in runs}
        if self.params.feedback == "self":
            verdicts = [self._reflection(k, r, principles)["verdict"] for r in runs]
            result["self_judged"] = sum(v == "success" for v in verdicts) / len(verdicts)
            for run, judged in zip(runs, verdicts, strict=True):
                result["per_episode"][run["episode"]]["verdict"] = judged
        self.ledger.save_version({**doc, "validation": result})

    def _select(self) -> tuple[int, dict[str, str]]:
        versions = self.ledger.versions
        chosen = versions[-1]
        if self.params.select == "best" and self.params.validation:
            key = "self_judged" if self.params.feedback == "self" else "reward"
            # the best score; among equals the earliest version (fewest updates)
            chosen = max(versions, key=lambda v: (v["validation"][key], -v["version"]))
        self.ledger.save_selected(
            {
                "principles": chosen["principles"],
                "version": chosen["version"],
                "selected_by": self.params.select,
                "versions": len(versions),
                "task": self.task.context.id,
            }
        )
        return int(chosen["version"]), dict(chosen["principles"])


# --- what the reflector and the optimizer read ----------------------------------------------


def trajectory_entry(kind: str, k: int, episode: str, outcome: Outcome, reward: str) -> JSON:
    """A played episode as the log keeps it (plain data; the trajectory without prompts)."""
    fields = outcome.fields
    value = (
        float(bool(fields.get("success")))
        if reward == "success"
        else float(fields.get("progress") or 0.0)
    )
    if outcome.error:
        value = 0.0
    steps = [
        {k2: v for k2, v in s.items() if k2 != "prompt"} for s in fields.get("trajectory") or ()
    ]
    return {
        "kind": kind,
        "version": k,
        "episode": episode,
        "goal": fields.get("goal") or "",
        "steps": steps,
        "answer": outcome.output if fields.get("ended_by") == "answer" else None,
        "ended_by": fields.get("ended_by"),
        "success": bool(fields.get("success")),
        "progress": float(fields.get("progress") or 0.0),
        "reward": value,
        "error": outcome.error,
        "tokens": sum((r.input_tokens or 0) + (r.output_tokens or 0) for r in outcome.responses),
    }


def actions_text(actions: dict[str, JSON]) -> str:
    lines = []
    for name, function in actions.items():
        arguments = ", ".join((function.get("parameters") or {}).get("properties") or {})
        lines.append(f"- {name}({arguments}): {function.get('description') or ''}".rstrip())
    return "\n".join(lines)


def principles_text(principles: dict[str, str]) -> str:
    if not principles:
        return "(none yet)"
    return "\n".join(f"- {name}: {text}" for name, text in principles.items())


def trajectory_text(trajectory: JSON, with_outcome: bool) -> str:
    """Each turn (thought, action, observation); how it ended only when the reward may be
    told (Self-RPO must not learn success from the ending's name)."""
    lines = []
    for number, step in enumerate(trajectory["steps"], 1):
        lines.append(f"Turn {number}:")
        if step.get("thought"):
            lines.append(f"  Thought: {_cut(step['thought'], 300)}")
        lines.append(f"  Action: {action_text(step)}")
        if step.get("observation"):
            lines.append(f"  Observation: {_cut(str(step['observation']), 400)}")
    if trajectory.get("answer"):
        lines.append(f"Final answer: {_cut(trajectory['answer'], 300)}")
    if trajectory.get("error"):
        lines.append(f"The episode failed: {trajectory['error']}")
    ending = ENDINGS.get(str(trajectory.get("ended_by")), "the episode ended")
    if not with_outcome and trajectory.get("ended_by") in ("success", "done", "budget"):
        ending = f"after {len(trajectory['steps'])} turn(s)"  # success and failure alike
    lines.append(f"Ended: {ending}.")
    return "\n".join(lines) if lines else "(no turns)"


ENDINGS = {
    "success": "the goal was reached",
    "done": "the environment ended the episode without the goal",
    "answer": "the agent answered in words",
    "budget": "the budget of turns ran out",
    "deadline": "the time ran out",
    "format_error": "an answer could not be read as a call",
}


def action_text(step: JSON) -> str:
    if step.get("actions") is None:
        raw = _cut(str(step.get("raw") or ""), 200)
        return f"(could not be read: {step.get('parse_error')}) {raw}"
    if not step["actions"]:
        return "(no call: an answer in words)"
    return "; ".join(
        f"{a['name']}({json.dumps(a.get('arguments') or {}, ensure_ascii=False)})"
        for a in step["actions"]
    )


def reward_text(trajectory: JSON, reward: str) -> str:
    reached = "yes" if trajectory["success"] else "no"
    return (
        f"{trajectory['reward']:.2f} ({'success' if reward == 'success' else 'progress rate'}, "
        f"from 0 to 1); goal reached: {reached}"
    )


def reflections_text(reflections: list[JSON]) -> str:
    return "\n\n".join(
        f"Reflection {n} (episode {r['episode']}):\n{r['text'] or '(empty)'}"
        for n, r in enumerate(reflections, 1)
    )


def answer_format(mode: str, actions: list[str]) -> str:
    if mode != "prompt":
        return f"Call {SET_PRINCIPLES} with the principle of each action."
    example = json.dumps({actions[0] if actions else "action": "..."})
    return f"Answer only with a JSON object from action name to principle, like {example}."


def principles_tool(actions: list[str], max_chars: int) -> JSON:
    """The optimizer's answer as a call (native and constrained modes): one string a action,
    its length bounded, so a grammar can force a well-formed, finite answer."""
    text = {"type": "string", "maxLength": max_chars}
    return {
        "type": "function",
        "function": {
            "name": SET_PRINCIPLES,
            "description": "Set the principle of every action.",
            "parameters": {
                "type": "object",
                "properties": dict.fromkeys(actions, text),
                "required": list(actions),
            },
        },
    }


def read_principles(
    response: Any, old: dict[str, str], actions: set[str], max_chars: int
) -> tuple[dict[str, str], JSON]:
    """The optimizer's principles (a full rewrite: an action left out has none), read from a
    ``set_principles`` call or the first JSON object of its text; the old principles and the
    reason when nothing usable came back."""
    answer: JSON = {
        "text": response.text,
        "calls": [c.to_dict() for c in response.tool_calls or ()],
    }
    found = _from_calls(response) or _from_text(response.text or "")
    if not isinstance(found, dict):
        return dict(old), {**answer, "error": "no JSON object of principles in the answer"}
    kept = {
        str(k): _cut(str(v).strip(), max_chars)
        for k, v in found.items()
        if str(k) in actions | {"*"}
    }
    kept = {k: v for k, v in kept.items() if v}
    dropped = sorted(str(k) for k in found if str(k) not in actions | {"*"})
    if not kept:
        return dict(old), {**answer, "error": "no principle for a known action", "dropped": dropped}
    return kept, {**answer, **({"dropped": dropped} if dropped else {})}


def _from_calls(response: Any) -> Any:
    for call in response.tool_calls or ():
        if call.name == SET_PRINCIPLES:
            return call.arguments
    return None


def _from_text(text: str) -> Any:
    """The first JSON object in the text (fenced or not); parsed, never evaluated."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def verdict(text: str) -> str:
    """Self-RPO's judgement: ``success``, ``failure`` or ``unclear``."""
    found = re.search(r"verdict\s*[:\-]?\s*\**\s*(success|failure)", text, re.IGNORECASE)
    return found.group(1).lower() if found else "unclear"


def changes(old: dict[str, str], new: dict[str, str]) -> JSON:
    """Which principles a version added, rewrote or removed."""
    return {
        "added": sorted(k for k in new if k not in old),
        "rewritten": sorted(k for k in new if k in old and new[k] != old[k]),
        "removed": sorted(k for k in old if k not in new),
    }


def _cut(text: str, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
