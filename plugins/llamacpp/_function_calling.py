"""Native tool calls for templates that cannot render tools, on the xllamacpp engine: the
recipe of llama-cpp-python's ``chatml-function-calling`` handler (0.3.36, MIT, Copyright (c)
2023 Andrei Betlen), step for step, so both engines answer alike.

The tools are listed in the system message (``TEMPLATE``, copied from the handler); a grammar
lets the model choose ``message:`` or ``functions.<name>:``; each chosen function's arguments
are generated under its JSON Schema's grammar, then a grammar offers another function or the
end of the turn. A named ``tool_choice`` skips the choice. The handler has no ``required``:
it is read as ``auto``. Not streamed, so there is no TTFT; token counts are the handler's:
those of the answer's text or of the arguments, not of the choices between them.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING
from typing import Any

from harness_plugins.shared import tool_calls as tools_lib
from jinja2.sandbox import ImmutableSandboxedEnvironment

from harness import ChatRequest
from harness import ChatResponse
from harness import ToolCall

from . import _common as common
from ._gbnf import JSON_GBNF
from ._gbnf import json_schema_to_gbnf

if TYPE_CHECKING:
    from ._xengine import XLlamaCppBackend

HANDLER = "chatml-function-calling"
END = "<|im_end|>"

TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message.role }}\n"
    # System message
    "{% if message.role == 'system' %}"
    "{{ message.content }}"
    "{% if tool_calls %}"
    "\n\nYou have access to the following functions:\n"
    "{% for tool in tools %}"
    "\nfunctions.{{ tool.function.name }}:\n"
    "{{ tool.function.parameters | tojson }}"
    "\n{% endfor %}"
    "\n\nYou can respond to users messages with either a single message or one or more "
    "function calls."
    "\n\nTo respond with a message begin the message with 'message:', use the following format:"
    "\n\nmessage:"
    "\n<message>"
    "\n\nTo respond with one or more function calls begin the message with "
    "'functions.<function_name>:', use the following format:"
    "\n\nfunctions.<function_name>:"
    '\n{ "arg1": "value1", "arg2": "value2" }'
    "\nfunctions.<function_name>:"
    '\n{ "arg1": "value1", "arg2": "value2" }'
    "{% endif %}"
    "<|im_end|>\n"
    "{% endif %}"
    # User message
    "{% if message.role == 'user' %}"
    "{{ message.content }}"
    "<|im_end|>\n"
    "{% endif %}"
    # Assistant message
    "{% if message.role == 'assistant' %}"
    ## Reglar message
    "{% if message.content and message.content | length > 0 %}"
    "{% if tool_calls %}"
    "message:\n"
    "{% endif %}"
    "{{ message.content }}"
    "<|im_end|>\n"
    "{% endif %}"
    ## Function calls
    "{% if 'tool_calls' in message %}"
    "{% for tool_call in message.tool_calls %}"
    "functions.{{ tool_call.function.name }}:\n"
    "{{ tool_call.function.arguments }}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_RENDER = ImmutableSandboxedEnvironment().from_string(TEMPLATE)


class Steps:
    """The completions of one answer: prompt text so far, token counts, the engine."""

    def __init__(self, engine: XLlamaCppBackend, request: ChatRequest, prompt: str) -> None:
        self.engine, self.request, self.prompt = engine, request, prompt
        self.input_tokens = self.output_tokens = 0

    def complete(
        self, grammar: str | None, stop: list[str], counted: bool = True, **overrides: Any
    ) -> str:
        """One text completion of the prompt so far (``max_tokens`` -1: until the grammar or a
        stop string ends it, as the handler asks for every step but the plain answers)."""
        body = self.engine._body(self.request, None, {"max_tokens": -1, **overrides})
        body |= {"prompt": self.prompt, "stop": stop, "stream": False}
        body.pop("stream_options", None)
        if grammar is not None:
            body["grammar"] = grammar
        result = self.engine.server.handle_completions(body)
        if "error" in result:
            raise ValueError(f"llama.cpp refused the request: {result['error'].get('message')}")
        usage = result.get("usage") or {} if counted else {}
        self.input_tokens += int(usage.get("prompt_tokens", 0))
        self.output_tokens += int(usage.get("completion_tokens", 0))
        return str(result["choices"][0]["text"])


def function_calling(
    engine: XLlamaCppBackend, request: ChatRequest, tools: list[dict[str, Any]], started: float
) -> ChatResponse:
    cpu0 = time.process_time()
    openai_tools = [common.openai_tool(t) for t in tools]
    messages = [common.message_dict(m) for m in request.messages]
    if not messages or messages[0]["role"] != "system":  # the tools go in the system message
        messages.insert(0, {"role": "system", "content": "You are a helpful assistant."})
    prompt = _RENDER.render(
        messages=messages, tools=openai_tools, tool_calls=True, add_generation_prompt=True
    )
    steps = Steps(engine, request, prompt)
    sampling = common.sampling(engine.params, request)
    stop = [*sampling["stop"], END]
    if request.tool_choice == "none":  # the handler's plain answer: no tools in the prompt
        steps.prompt = _RENDER.render(
            messages=messages, tools=[], tool_calls=None, add_generation_prompt=True
        )
        text = steps.complete(None, stop, max_tokens=sampling["max_tokens"])
        return _reply(steps, text, None, started, cpu0)
    named = _named(request.tool_choice)
    if named is None:
        choice = _choice_grammar(openai_tools, "message:")
        first = steps.complete(choice, [":"], counted=False, temperature=0)
        if "message" in first:  # the handler then constrains the message as below (sic)
            steps.prompt += "message:\n"
            text = steps.complete(_choice_grammar(openai_tools, END), [END])
            return _reply(steps, text, None, started, cpu0)
        named = first[len("functions.") :]
    calls = _calls(steps, openai_tools, named, stop)
    return _reply(steps, None, tuple(calls), started, cpu0)


def _calls(steps: Steps, tools: list[dict[str, Any]], name: str, stop: list[str]) -> list[ToolCall]:
    calls = []
    tool = _tool(tools, name)
    while tool is not None:
        steps.prompt += f"functions.{name}:\n"
        arguments = steps.complete(_arguments_grammar(tool), stop)
        calls.append(ToolCall(name=name, arguments=common.call_arguments(arguments)))
        steps.prompt += arguments + "\n"
        follow = steps.complete(_choice_grammar(tools, END), stop, counted=False)
        name = follow[len("functions.") :]
        tool = _tool(tools, name)
    return calls


def _reply(
    steps: Steps, text: str | None, calls: tuple[ToolCall, ...] | None, started: float, cpu0: float
) -> ChatResponse:
    if text is None and calls is not None:
        text = json.dumps([c.to_dict() for c in calls])
    timing = {
        "total_s": round(time.perf_counter() - started, 6),
        "cpu_s": round(time.process_time() - cpu0, 6),
    }
    return ChatResponse(
        text=text,
        tool_calls=calls,
        input_tokens=steps.input_tokens,
        output_tokens=steps.output_tokens,
        finish_reason="tool_calls" if calls else "stop",
        timing=timing,
        extra={"native_handler": HANDLER},
    )


def _choice_grammar(tools: list[dict[str, Any]], other: str) -> str:
    names = " | ".join(f'"functions.{t["function"]["name"]}:"' for t in tools)
    return f'root   ::= functions | "{other}"\nfunctions ::= {names}\n'


def _arguments_grammar(tool: dict[str, Any]) -> str:
    try:
        return json_schema_to_gbnf(json.dumps(tool["function"]["parameters"]))
    except Exception:  # as the handler does: any JSON object when the schema cannot convert
        return JSON_GBNF


def _tool(tools: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((t for t in tools if t["function"]["name"] == name), None)


def _named(choice: Any) -> str | None:
    if isinstance(choice, dict):
        return str(tools_lib.tool_function(choice)["name"])
    return None
