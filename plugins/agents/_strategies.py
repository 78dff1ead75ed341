"""The strategies: ``act``, ``react`` and ``plan_act`` (AgentBoard's and AgentLite's agents).

Every strategy is :class:`Act`'s loop: a model turn, its calls decoded by a harness decoder
(so prompt, native and constrained modes all work), each call applied to the environment,
the observations sent back as the next user turn, until the environment says done, the
model answers without a call, or the budget of turns is spent. A turn whose output cannot
be read as calls is a format error: the agent is told and the turn counts. ``react`` adds a
thought in words before each action; ``plan_act`` writes a plan first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from harness import Agent
from harness import Backend
from harness import BuildContext
from harness import ChatRequest
from harness import ChatResponse
from harness import DecodeError
from harness import Episode
from harness import GenerationParams
from harness import Message
from harness import StepResult
from harness import ToolCall
from harness import Trajectory

from . import ActParams
from . import PlanActParams
from . import PRActParams
from . import ReActParams

SYSTEM = (
    "You are an agent acting in an environment through function calls. After each call you "
    "see what happened (an observation). Work step by step towards the goal: call one "
    "function at a time, use what the observations tell you, and do not repeat a call that "
    "changed nothing. The episode ends when the goal is reached."
)
PROMPT_FORMAT = (
    "Answer only with the function calls, in the format [func_name(param=value, ...)]. "
    "Here are the functions in JSON format:\n{functions}"
)
FORMAT_ERROR = (
    "ERROR | could not read a function call in your answer ({detail}); answer with a call"
)


class Act(Agent):
    """Act-only: each turn's calls are the actions."""

    params: ActParams

    def __init__(self, params: ActParams, context: BuildContext) -> None:
        super().__init__(params, context)
        default = "python_calls" if params.mode == "prompt" else "openai_tool_calls"
        self.decoder = context.build("decoder", params.decoder or default)

    # --- the loop ---------------------------------------------------------------------------

    def run(self, episode: Episode, backend: Backend) -> Trajectory:
        environment = episode.environment
        tools = self.shown_tools(environment.tools())
        messages = [Message("system", self.system_prompt(tools)), _opening(episode)]
        trajectory = Trajectory()
        self.prepare(episode, backend, messages, trajectory)
        progress = 0.0
        ends_at = time.monotonic() + (episode.deadline_s or float("inf"))
        for number in range(episode.max_steps):
            if number and time.monotonic() >= ends_at:
                trajectory.ended_by = "deadline"
                break
            record: dict[str, Any] = {"step": number, "prompt": messages[-1].content}
            self.before_action(episode, backend, messages, trajectory, record)
            tools = self.shown_tools(environment.tools())  # functions may come at a later turn
            response = backend.chat(self.request(episode, messages, tools))
            trajectory.responses.append(response)
            said = _said(response)
            messages.append(Message("assistant", said))
            record.update(raw=said, input_tokens=response.input_tokens)
            record["output_tokens"] = response.output_tokens
            result = self._turn(episode, response, record, progress)
            trajectory.steps.append(record)
            if result is None:  # an answer in words: the episode ends, or its next turn comes
                result = self._answered(environment, response.text or "", record, progress)
            if result is None:
                trajectory.answer, trajectory.ended_by = response.text or "", "answer"
                break
            progress = result.progress
            if result.done:
                trajectory.ended_by = "success" if result.success else "done"
                break
            if result.error == "format" and self.params.on_format_error == "stop":
                trajectory.ended_by = "format_error"
                break
            messages.append(Message("user", f"Observation:\n{record['observation']}"))
        return trajectory

    def _turn(
        self, episode: Episode, response: ChatResponse, record: dict[str, Any], progress: float
    ) -> StepResult | None:
        """Decode and apply one turn's calls; None when the turn is an answer without calls."""
        try:
            calls = self.decoder.decode(response.text, response.tool_calls)
        except DecodeError as exc:
            if self.params.on_format_error == "answer":  # words, not calls: BFCL's turn end
                record.update(actions=[], observation=None, progress=progress, valid=True)
                record.update(done=True, unread=str(exc))
                return None
            note = FORMAT_ERROR.format(detail=exc)
            record.update(actions=None, parse_error=str(exc), observation=note)
            record.update(progress=progress, valid=False, error="format", done=False)
            return StepResult(note, progress, valid=False, error="format")
        if not calls:
            record.update(actions=[], observation=None, progress=progress, valid=True)
            record["done"] = True
            return None
        return self._apply(episode, calls, record, progress)

    def _answered(
        self, environment: Any, text: str, record: dict[str, Any], progress: float
    ) -> StepResult | None:
        """What the environment makes of an answer in words (None: the episode ends)."""
        result = environment.respond(text)
        if result is not None:
            record.update(
                observation=result.observation,
                progress=max(progress, result.progress),
                done=result.done,
            )
        return result

    def _apply(
        self, episode: Episode, calls: list[ToolCall], record: dict[str, Any], progress: float
    ) -> StepResult:
        cap = self.params.max_calls_per_step
        results = [episode.environment.step(call) for call in calls[:cap]]
        notes = [r.observation for r in results]
        if len(calls) > cap:
            notes.append(f"ERROR | {len(calls)} calls in one turn; only the first {cap} ran")
        last = results[-1]
        errors = [r.error for r in results if r.error]
        record.update(
            actions=[c.to_dict() for c in calls],
            results=[_result_record(r) for r in results],
            observation="\n".join(notes),
            progress=max(progress, *(r.progress for r in results)),
            valid=all(r.valid for r in results) and len(calls) <= cap,
            valid_actions=sum(r.valid for r in results),
            error=errors[0] if errors else None,
            done=any(r.done for r in results),
        )
        done = next((r for r in results if r.done), last)
        return StepResult(
            record["observation"],
            record["progress"],
            done=record["done"],
            valid=record["valid"],
            success=done.success,
            error=record["error"],
        )

    # --- what strategies change -------------------------------------------------------------

    def shown_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tools as the model sees them (pract adds each action's principle)."""
        return tools

    def system_prompt(self, tools: list[dict[str, Any]]) -> str:
        text = self.params.system or SYSTEM
        if self.params.mode == "prompt":
            listing = json.dumps([t["function"] for t in tools], indent=2)
            text += "\n\n" + PROMPT_FORMAT.format(functions=listing)
        return text

    def prepare(
        self, episode: Episode, backend: Backend, messages: list[Message], trajectory: Trajectory
    ) -> None:
        """Before the first turn (plan_act writes its plan here)."""

    def before_action(
        self,
        episode: Episode,
        backend: Backend,
        messages: list[Message],
        trajectory: Trajectory,
        record: dict[str, Any],
    ) -> None:
        """Before each action turn (react thinks here)."""

    def request(
        self, episode: Episode, messages: list[Message], tools: list[dict[str, Any]]
    ) -> ChatRequest:
        prompt = self.params.mode == "prompt"
        return ChatRequest(
            messages=tuple(messages),
            tools=None if prompt else tuple(tools),
            tool_choice=None if prompt else "auto",
            params=GenerationParams(
                max_tokens=self.params.max_tokens,
                temperature=0.0,
                seed=episode.seed,
                extra={"max_calls": self.params.max_calls_per_step},
            ),
            task=episode.task,
            sample_id=episode.sample_id,
            mode=self.params.mode,
        )

    def words(
        self, episode: Episode, backend: Backend, messages: list[Message], max_tokens: int
    ) -> ChatResponse:
        """A free-text turn (no tools): a thought or a plan."""
        request = ChatRequest(
            messages=tuple(messages),
            params=GenerationParams(max_tokens=max_tokens, temperature=0.0, seed=episode.seed),
            task=episode.task,
            sample_id=episode.sample_id,
        )
        return backend.chat(request)


class ReAct(Act):
    """A thought, then the action: the thought is its own free-text turn, so it works in
    every mode (a grammar-forced action could not carry it)."""

    params: ReActParams

    def before_action(
        self,
        episode: Episode,
        backend: Backend,
        messages: list[Message],
        trajectory: Trajectory,
        record: dict[str, Any],
    ) -> None:
        ask = Message("user", "Think in one or two sentences about what to do next. No call yet.")
        response = self.words(episode, backend, [*messages, ask], self.params.thought_tokens)
        trajectory.responses.append(response)
        thought = _without_label(response.text or "", "Thought:")
        record["thought"] = thought
        messages.append(Message("assistant", f"Thought: {thought}"))
        messages.append(Message("user", "Now act: call one function."))


class PlanAct(Act):
    """A numbered plan first (one free-text turn), then act with the plan in view."""

    params: PlanActParams

    def prepare(
        self, episode: Episode, backend: Backend, messages: list[Message], trajectory: Trajectory
    ) -> None:
        ask = Message("user", "Before acting, write a short numbered plan. No call yet.")
        response = self.words(episode, backend, [*messages, ask], self.params.plan_tokens)
        trajectory.responses.append(response)
        plan = (response.text or "").strip()
        trajectory.extra["plan"] = plan
        messages.append(Message("assistant", f"Plan:\n{plan}"))
        messages.append(Message("user", "Now act: call one function."))


def _without_label(text: str, label: str) -> str:
    """The text without the labels the model wrote itself (``Thought: Thought: ...``), so the
    history the agent builds does not stack them."""
    text = text.strip()
    while text.lower().startswith(label.lower()):
        text = text[len(label) :].strip()
    return text


def _opening(episode: Episode) -> Message:
    """The first user turn: the goal, and the first observation when there is one."""
    if not episode.observation:
        return Message("user", episode.goal)
    return Message("user", f"Goal: {episode.goal}\n\nObservation:\n{episode.observation}")


def _said(response: ChatResponse) -> str:
    """The assistant turn as the model sees it again: its text, else its calls as JSON."""
    if response.text:
        return response.text
    return json.dumps([c.to_dict() for c in response.tool_calls or ()], ensure_ascii=False)


def _result_record(result: StepResult) -> dict[str, Any]:
    """One action's result as plain data (the environment's ``info`` included)."""
    return {
        "observation": result.observation,
        "valid": result.valid,
        "error": result.error,
        **result.info,
    }


class PRAct(ReAct):
    """ReAct whose action documentation carries a principle per action (PRAct): a short rule
    on when and how to call it, appended to the tool's description the model sees."""

    params: PRActParams

    def __init__(self, params: PRActParams, context: BuildContext) -> None:
        super().__init__(params, context)
        self.principles: dict[str, str] = load_principles(params)

    def shown_tools(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [with_principle(tool, self.principles) for tool in tools]


def load_principles(params: PRActParams) -> dict[str, str]:
    """The principles of the manifest entry: ``principles`` over those of ``principles_file``."""
    found: dict[str, str] = {}
    if params.principles_file:
        data = json.loads(Path(params.principles_file).read_text(encoding="utf-8"))
        found.update(data.get("principles", data) if isinstance(data, dict) else {})
    found.update(params.principles or {})
    return {str(k): str(v) for k, v in found.items() if str(v).strip()}


def with_principle(tool: dict[str, Any], principles: dict[str, str]) -> dict[str, Any]:
    """The tool with its principle (or the ``*`` one, for every action) after its description."""
    function = tool.get("function", {})
    rules = [principles[k] for k in ("*", function.get("name")) if k in principles]
    if not rules:
        return tool
    described = str(function.get("description") or "").rstrip()
    text = (described + "\n" if described else "") + "Principle: " + " ".join(rules)
    return {**tool, "function": {**function, "description": text}}
