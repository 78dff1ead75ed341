"""Task ``spectool``: probe queries played as multi-step episodes over executable tool sets.

An episode follows SpecTool's protocol: the model sees the functions plus a ``finish(answer)``
action, calls functions step by step (at most ``max_steps``), and each call is checked by a
validator before it runs. With ``feedback`` on (the default) a call with an unknown function,
unknown or missing arguments or a wrong type is not executed and the validator's message is
the observation; with it off the call goes to the sandbox as it is (which refuses it without
running anything). Valid calls run in the sandbox (:mod:`harness_plugins.shared.sandbox`): a
subprocess with a timeout, resource limits and no network. The episode's trajectory goes to
``outcome.fields["trajectory"]`` for the ``spectool`` metric; metric ``spectool_success``
says whether every expected call ran and the model finished.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from harness_plugins.shared.sandbox import check_arguments
from harness_plugins.shared.sandbox import run_call
from harness_plugins.shared.toolsets import TOOLSETS

from harness import BuildContext
from harness import ChatRequest
from harness import DecodeError
from harness import GenerationParams
from harness import Message
from harness import Metric
from harness import Outcome
from harness import Sample
from harness import Score
from harness import Task
from harness import ToolCall

from ._probes import Probe
from ._probes import apigen_seeds
from ._probes import augment
from ._probes import bfcl_seeds

if TYPE_CHECKING:
    from collections.abc import Iterator

    from . import SpecToolTaskParams

FINISH = {
    "name": "finish",
    "description": "Call this with your final answer once the request is fully handled.",
    "parameters": {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
    },
}
SYSTEM = (
    "You can call functions to help the user. Call one or more functions at a time; you will "
    "see their results. When the request is fully handled, call finish(answer=...) with your "
    "final answer."
)
PROMPT_FORMAT = (
    "Answer only with the function calls, in the format [func_name(param=value, ...)]. "
    "Here are the functions in JSON format:\n{functions}"
)


class SpecToolTask(Task):
    default_metrics = ("spectool_success", "spectool")
    params: SpecToolTaskParams

    def __init__(self, params: SpecToolTaskParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self.mode = params.mode
        default = "python_calls" if self.mode == "prompt" else "openai_tool_calls"
        self.decoder = context.build("decoder", params.decoder or default)

    def probes(self) -> list[Probe]:
        p = self.params
        seeds: list[Probe] = []
        if "bfcl" in p.sources:
            seeds += bfcl_seeds()
        if "apigen" in p.sources:
            seeds += apigen_seeds(Path(p.apigen_path) if p.apigen_path else None)
        seeds = [s for s in seeds if not p.toolsets or s.toolset in p.toolsets]
        probes = list(augment(seeds, tuple(p.augmentations), self.context.seed or 0))
        return probes[: p.limit] if p.limit else probes

    def samples(self) -> Iterator[Sample]:
        for probe in self.probes():
            specs = [
                f
                for f in TOOLSETS[probe.toolset].functions
                if probe.offered is None or f["name"] in probe.offered
            ]
            tools = tuple({"type": "function", "function": dict(f)} for f in [*specs, FINISH])
            yield Sample(
                id=probe.id,
                messages=(Message("system", SYSTEM), Message("user", probe.query)),
                tools=tools,
                target=[dict(c) for c in probe.expected],
                metadata={
                    "toolset": probe.toolset,
                    "category": probe.augmentation,
                    "source": probe.source,
                },
            )

    def size(self) -> int:
        return len(self.probes())

    def data_files(self) -> list[Path]:
        path = self.params.apigen_path
        return [Path(path)] if path else []

    def play(self, sample: Sample, backend: Any) -> Outcome:
        return Episode(self, sample, backend).run()


class Episode:
    """One probe played to the end: model step, validation, sandboxed execution, observation."""

    def __init__(self, task: SpecToolTask, sample: Sample, backend: Any) -> None:
        self.task, self.sample, self.backend = task, sample, backend
        self.params: SpecToolTaskParams = task.params
        self.specs = {t["function"]["name"]: t["function"] for t in sample.tools or ()}
        self.messages = list(sample.messages)
        if task.mode == "prompt":
            listing = json.dumps(list(self.specs.values()), indent=2)
            self.messages[0] = Message(
                "system", SYSTEM + "\n\n" + PROMPT_FORMAT.format(functions=listing)
            )
        self.steps: list[dict[str, Any]] = []
        self.responses: list[Any] = []
        self.answer: str | None = None

    def run(self) -> Outcome:
        ends_at = time.monotonic() + self.params.deadline_s
        deadline = False
        for _ in range(self.params.max_steps):
            if self.step():
                break
            if time.monotonic() >= ends_at:
                deadline = True
                break
        executed = [
            ToolCall(c["name"], c["arguments"])
            for s in self.steps
            if s["executed"]
            for c in s["calls"] or ()
        ]
        fields = {
            "trajectory": self.steps,
            "mode": self.task.mode,
            "finished": self.answer is not None,
            "feedback": self.params.feedback,
            "subtask": self.sample.metadata["category"],
            "deadline": deadline,
        }
        output = (
            self.answer
            if self.answer is not None
            else (self.responses[-1].text if self.responses else None)
        )
        return Outcome(
            output=output, calls=tuple(executed), responses=tuple(self.responses), fields=fields
        )

    def step(self) -> bool:
        """One model turn; True when the episode is over."""
        request = ChatRequest(
            messages=tuple(self.messages),
            tools=None if self.task.mode == "prompt" else self.sample.tools,
            tool_choice=None if self.task.mode == "prompt" else "auto",
            params=GenerationParams(
                max_tokens=self.params.max_tokens,
                temperature=0.0,
                seed=self.task.context.seed,
                extra={"max_calls": self.params.max_calls_per_step},
            ),
            task=self.task.context.id,
            sample_id=self.sample.id,
            mode=self.task.mode,
        )
        response = self.backend.chat(request)
        self.responses.append(response)
        said = response.text or json.dumps([c.to_dict() for c in response.tool_calls or ()])
        self.messages.append(Message("assistant", said))
        try:
            calls = self.task.decoder.decode(response.text, response.tool_calls)
        except DecodeError as exc:
            return self._format_error(str(exc))
        if not calls:  # an answer without any call is a step too (IAC when calls were due)
            self.answer = response.text or ""
            self.steps.append({"calls": [], "executed": False, "observation": "final answer"})
            return True
        return self._act(calls)

    def _format_error(self, detail: str) -> bool:
        self.steps.append(
            {"calls": None, "executed": False, "observation": f"format error: {detail}"}
        )
        if not self.params.feedback:
            return True
        self._observe("ERROR | format error: answer with function calls as instructed. " + detail)
        return False

    def _act(self, calls: list[ToolCall]) -> bool:
        observations, finished = [], False
        cap = self.params.max_calls_per_step
        if len(calls) > cap:  # one turn cannot run an unbounded number of calls
            dropped = [c.to_dict() for c in calls[cap:]]
            note = f"ERROR | {len(calls)} calls in one turn; only the first {cap} ran"
            self.steps.append({"calls": dropped, "executed": False, "observation": note})
            observations.append(note)
            calls = calls[:cap]
        for call in calls:
            if call.name == "finish":
                self.answer, finished = str(call.arguments.get("answer", "")), True
                continue
            observations.append(self._run(call))
        if observations:
            self._observe("\n".join(observations))
        return finished

    def _run(self, call: ToolCall) -> str:
        record = {"calls": [call.to_dict()], "executed": False, "observation": None}
        self.steps.append(record)
        problem = self._validate(call)
        if problem and self.params.feedback:
            record["observation"] = f"ERROR | {problem}"
            return f"{call.name}: ERROR | {problem}"
        result = run_call(
            self.sample.metadata["toolset"],
            call.name,
            call.arguments,
            timeout_s=self.params.call_timeout_s,
        )
        record["executed"] = result.kind not in ("unknown_function", "bad_arguments")
        record["observation"] = (
            result.result if result.ok else f"ERROR | {result.kind}: {result.error}"
        )
        return f"{call.name}: {json.dumps(record['observation'], default=str)[:2000]}"

    def _validate(self, call: ToolCall) -> str | None:
        """SpecTool's validator: unknown function, then argument names, then types."""
        spec = self.specs.get(call.name)
        if spec is None:
            return (
                f"unknown function {call.name!r}; valid functions: {', '.join(sorted(self.specs))}"
            )
        problems = check_arguments(spec.get("parameters"), call.arguments)
        return "; ".join(problems) if problems else None

    def _observe(self, text: str) -> None:
        self.messages.append(Message("user", f"Observation:\n{text}"))


class SpecToolSuccess(Metric):
    """1 when every expected call ran (same function, same arguments) and the model finished."""

    def score(self, sample: Sample, outcome: Outcome) -> Score:
        done = Counter(_key(c.name, c.arguments) for c in outcome.calls or ())
        need = Counter(_key(c["name"], c["arguments"]) for c in sample.target or [])
        covered = all(done[k] >= n for k, n in need.items())
        finished = bool(outcome.fields.get("finished"))
        steps = len(outcome.responses)
        return Score(
            values={
                "success": float(covered and finished),
                "calls_covered": float(covered),
                "finished": float(finished),
                "steps": float(steps),
            }
        )


def _key(name: str, arguments: dict[str, Any]) -> str:
    norm = {k: v.strip().lower() if isinstance(v, str) else v for k, v in arguments.items()}
    return json.dumps([name, norm], sort_keys=True, default=str)
