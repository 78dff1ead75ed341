"""BFCL's prompts and tool schemas, rebuilt from its documented defaults.

Prompt mode uses BFCL's default system prompt (``ret_fmt=python``, no tool-call tag, function
docs as JSON, plaintext, "classic" style), byte for byte. Native mode turns BFCL's function
docs into OpenAI tools, converting BFCL's type names to JSON Schema as BFCL's own handlers do.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from typing import Any

log = logging.getLogger(__name__)

PYTHON_HINT = " Note that the provided function is in Python 3 syntax."
OUTPUT_FORMAT = (
    "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]"
)
PERSONA = "You are an expert in composing functions."
TASK = (
    "You are given a question and a set of possible functions. Based on the question, you will "
    "need to make one or more function/tool calls to achieve the purpose. If none of the "
    "functions can be used, point it out. If the given question lacks the parameters required "
    "by the function, also point it out."
)
TOOL_CALL_FORMAT = (
    "You should only return the function calls in your response.\n\nIf you decide to invoke any "
    "of the function(s), you MUST put it in the format of {output_format}. {param_types} You "
    "SHOULD NOT include any other text in the response."
)
MULTITURN = (
    "At each turn, you should try your best to complete the tasks requested by the user within "
    "the current turn. Continue to output functions to call until you have fulfilled the user's "
    "request to the best of your ability. Once you have no more functions to call, the system "
    "will consider the current turn complete and proceed to the next turn or task."
)
AVAILABLE = "Here is a list of functions in {format} format that you can invoke.\n{functions}\n"
TEMPLATE = "{persona}{task}\n\n{tool_call_format}\n\n{multiturn_behavior}\n\n{available_tools}"


def with_language_hint(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL appends a language note to every function description (Python here)."""
    return [
        {**item, "description": item.get("description", "") + PYTHON_HINT} for item in functions
    ]


def system_prompt(functions: list[dict[str, Any]]) -> str:
    """BFCL's default system prompt for the given (already hinted) function docs."""
    return TEMPLATE.format(
        persona=PERSONA,
        task=TASK,
        tool_call_format=TOOL_CALL_FORMAT.format(output_format=OUTPUT_FORMAT, param_types=""),
        multiturn_behavior=MULTITURN,
        available_tools=AVAILABLE.format(format="json", functions=json.dumps(functions, indent=4)),
    )


def prompt_messages(
    question: list[dict[str, Any]], functions: list[dict[str, Any]], prompt: str | None = None
) -> list[dict[str, Any]]:
    """The first turn with BFCL's system prompt in front (merged into a system message).

    ``prompt`` is the system prompt when the caller already has it (it is the costly part:
    BFCL's indented JSON of the function docs).
    """
    prompt = prompt if prompt is not None else system_prompt(with_language_hint(functions))
    messages = [dict(m) for m in question]
    if messages and messages[0].get("role") == "system":
        messages[0]["content"] = prompt + "\n\n" + messages[0]["content"]
    else:
        messages.insert(0, {"role": "system", "content": prompt})
    return messages


# --- native tools ---------------------------------------------------------------------------

TYPE_MAP = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "dict": "object",
    "object": "object",
    "tuple": "array",
    "any": "string",
}
LOSSY = {
    "float": "float -> number: an integer now also fits the schema (BFCL adds a hint)",
    "tuple": "tuple -> array: the fixed length and per-position types are lost",
    "any": "any -> string: the model is asked for a string whatever the value",
}
_logged: set[str] = set()


def _note_lossy(kind: str) -> None:
    if kind in LOSSY and kind not in _logged:
        _logged.add(kind)
        log.info("BFCL type conversion %s", LOSSY[kind])


def openai_tool(function: dict[str, Any], sanitize_names: bool) -> dict[str, Any]:
    """One BFCL function doc as an OpenAI tool (``a.b`` -> ``a_b`` when names are sanitized)."""
    doc = with_language_hint([function])[0]
    name = re.sub(r"\.", "_", doc["name"]) if sanitize_names else doc["name"]
    params = doc.get("parameters", {})
    schema = {
        "type": "object",
        "properties": _cast_properties(copy.deepcopy(params.get("properties", {}))),
    }
    if params.get("required"):
        schema["required"] = list(params["required"])
    return {
        "type": "function",
        "function": {"name": name, "description": doc["description"], "parameters": schema},
    }


def _cast_properties(properties: dict[str, Any]) -> dict[str, Any]:
    for value in properties.values():
        _cast(value)
    return properties


def _cast(value: dict[str, Any], hint: bool = True) -> None:
    kind = value.get("type", "string")
    _note_lossy(kind)
    if kind == "float" and hint:
        value["format"] = "float"
        value["description"] = value.get("description", "") + " This is a float type value."
    value["type"] = TYPE_MAP.get(kind, "string")
    if "properties" in value and isinstance(value["properties"], dict):
        _cast_properties(value["properties"])
    if isinstance(value.get("items"), dict):
        _cast(value["items"], hint=False)
