"""BFCL's prompts and tool schemas, rebuilt from its documented defaults.

Prompt mode uses BFCL's default system prompt (``ret_fmt=python``, no tool-call tag, function
docs as JSON, plaintext, "classic" style), byte for byte. Native mode sends BFCL's function
docs as the OpenAI tools BFCL's own handler builds, byte for byte (only type names cast).
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

#: BFCL's ``GORILLA_TO_OPENAPI`` (``constants/type_mappings.py``), Java and JavaScript included.
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
    "byte": "integer",
    "short": "integer",
    "long": "integer",
    "double": "number",
    "char": "string",
    "ArrayList": "array",
    "Array": "array",
    "HashMap": "object",
    "Hashtable": "object",
    "Queue": "array",
    "Stack": "array",
    "Any": "string",
    "String": "string",
    "Bigint": "integer",
}
LOSSY = {
    "float": "float -> number: an integer now also fits the schema (BFCL adds a hint)",
    "tuple": "tuple -> array: the fixed length and per-position types are lost",
    "any": "any -> string: the model is asked for a string whatever the value",
}
_logged: set[str] = set()


def _note_lossy(kind: Any) -> None:
    if isinstance(kind, str) and kind in LOSSY and kind not in _logged:
        _logged.add(kind)
        log.info("BFCL type conversion %s", LOSSY[kind])


def openai_tool(function: dict[str, Any], sanitize_names: bool) -> dict[str, Any]:
    """One BFCL function doc as the OpenAI tool BFCL's own handler sends (``convert_to_tool``,
    OpenAI-completions style), byte for byte: BFCL's dict in BFCL's key order, only ``type``
    names cast (and ``a.b`` -> ``a_b`` when names are sanitized).

    Nothing is rebuilt: a local chat template renders the tool JSON into the prompt, so a
    reordered, pruned or completed ``parameters`` object would change the text the model reads.
    """
    item = copy.deepcopy(with_language_hint([function])[0])
    if sanitize_names and "." in item["name"]:
        item["name"] = re.sub(r"\.", "_", item["name"])
    params = item.get("parameters")
    if isinstance(params, dict):
        params["type"] = "object"
        if isinstance(params.get("properties"), dict):
            _cast_properties(params["properties"])
    return {"type": "function", "function": item}


def _cast_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """BFCL's ``_cast_to_openai_type``: each property's type mapped (``float`` with BFCL's
    hint), then nested ``properties`` or ``items`` as deep as BFCL goes and no deeper."""
    for value in properties.values():
        if isinstance(value, dict):
            _cast_property(value)
    return properties


def _cast_property(value: dict[str, Any]) -> None:
    if "type" not in value:
        value["type"] = "string"
    else:
        kind = value["type"]
        _note_lossy(kind)
        if kind == "float":
            value["format"] = "float"
            value["description"] = value.get("description", "") + " This is a float type value."
        value["type"] = _mapped(kind)
    if value["type"] not in ("array", "object"):
        return
    if isinstance(value.get("properties"), dict):
        _cast_properties(value["properties"])
    elif isinstance(value.get("items"), dict):
        _cast_items(value["items"])


def _cast_items(items: dict[str, Any]) -> None:
    """An array's ``items``: its type, then one more level (an array's items' type, or an
    object's properties), as BFCL's handler does."""
    items["type"] = _mapped(items.get("type", "string"))
    inner = items.get("items")
    if items["type"] == "array" and isinstance(inner, dict):
        inner["type"] = _mapped(inner.get("type", "string"))
    elif items["type"] == "object" and isinstance(items.get("properties"), dict):
        _cast_properties(items["properties"])


def _mapped(kind: Any) -> str:
    """BFCL's ``GORILLA_TO_OPENAPI`` (where BFCL would fail on an unknown type: ``string``)."""
    return TYPE_MAP.get(kind, "string") if isinstance(kind, str) else "string"
