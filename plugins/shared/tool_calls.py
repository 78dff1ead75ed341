"""Tool calling for local models, without the runtime: the call-list schema, the tool prompt
and the parsers. Pure Python (no ``llama_cpp``), so the unit tests run anywhere.

Constrained mode forces the model's answer to be a JSON array of calls::

    [{"name": "get_weather", "arguments": {"city": "Paris"}}, ...]

where each ``name`` is one of the offered tools and its ``arguments`` follow that tool's
parameter schema; ``[]`` means "no call" (BFCL's irrelevance items need it). The backend turns
:func:`calls_schema` into a grammar; :func:`parse_calls` decodes what the model wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from harness import Message
from harness import ToolCall

JSON = dict[str, Any]

# BFCL and other Python-flavoured function docs use type names JSON Schema does not know.
TYPE_ALIASES = {
    "dict": "object",
    "float": "number",
    "double": "number",
    "int": "integer",
    "long": "integer",
    "tuple": "array",
    "list": "array",
    "str": "string",
    "bool": "boolean",
    "char": "string",
    "hashmap": "object",
    "arraylist": "array",
}
_UNTYPED = {"any", ""}

TOOL_PROMPT = (
    "You can call these functions:\n{functions}\n\n"
    "Answer with a JSON list of the calls to make, each written as "
    '{{"name": "<function name>", "arguments": {{<argument>: <value>, ...}}}}. '
    "Answer [] if none of the functions fits the request."
)


def tool_function(tool: JSON) -> JSON:
    """The ``function`` part of an OpenAI tool (a bare function object is accepted too)."""
    body = tool.get("function", tool) if isinstance(tool, dict) else {}
    if not isinstance(body, dict) or not isinstance(body.get("name"), str):
        raise ValueError(f"tool without a function name: {json.dumps(tool)[:200]}")
    return body


def normalise_schema(schema: Any) -> Any:
    """A copy of ``schema`` with Python-style type names mapped to JSON Schema ones
    (``dict`` -> ``object``, ``float`` -> ``number``, ``any`` -> no type), recursively."""
    return _rewrite(schema, _normalise_rule)


def _normalise_rule(key: str, value: Any) -> Any:
    if key == "type" and isinstance(value, str | list):
        kind = _json_type(value)
        return _DROP if kind is None else kind
    if key == "properties":
        return _DROP  # a malformed "properties" would make every argument invalid
    return _KEEP


def _json_type(kind: str | list) -> str | list | None:
    if isinstance(kind, list):
        return [TYPE_ALIASES.get(str(k).lower(), k) for k in kind]
    mapped = TYPE_ALIASES.get(kind.lower(), kind)
    return None if mapped.lower() in _UNTYPED else mapped


def parameters_schema(tool: JSON) -> JSON:
    """The tool's argument schema, normalised; a tool with none takes any JSON object."""
    params = tool_function(tool).get("parameters")
    if not isinstance(params, dict) or not params:
        return {"type": "object"}
    schema = normalise_schema(params)
    schema.setdefault("type", "object")
    return schema


def grammar_friendly(schema: Any) -> Any:
    """A copy without what llama.cpp's schema-to-grammar converter refuses but can do without:
    unanchored ``pattern``s (JSON Schema searches them anywhere in the string; the converter
    only takes ``^...$``). The grammar is then looser than the schema, never stricter."""
    return _rewrite(schema, _grammar_rule)


def _grammar_rule(key: str, value: Any) -> Any:
    if key == "pattern" and isinstance(value, str):
        return value if value.startswith("^") and value.endswith("$") else _DROP
    return _KEEP


_KEEP, _DROP = object(), object()


def _rewrite(schema: Any, rule: Callable[[str, Any], Any]) -> Any:
    """A copy of ``schema`` with ``rule(key, value)`` applied to the keywords of every nested
    object: the rule returns a new value, ``_DROP`` (leave the keyword out) or ``_KEEP`` (copy
    it, rewritten recursively). ``properties`` maps names to subschemas, never keywords."""
    if isinstance(schema, list):
        return [_rewrite(s, rule) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: JSON = {}
    for key, value in schema.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {name: _rewrite(sub, rule) for name, sub in value.items()}
            continue
        new = rule(key, value)
        if new is not _DROP:
            out[key] = _rewrite(value, rule) if new is _KEEP else new
    return out


def call_schema(name: str, arguments: JSON) -> JSON:
    """One call: exactly ``name`` (a constant) then ``arguments``."""
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": arguments},
        "required": ["name", "arguments"],
    }


def calls_schema(
    tools: list[JSON],
    tool_choice: str | JSON | None = None,
    max_calls: int | None = None,
    arguments: dict[str, JSON] | None = None,
) -> JSON:
    """JSON Schema of the answer: an array of calls over ``tools``.

    ``tool_choice``: ``"required"`` needs at least one call, a named function restricts the
    list to that function (at least one call), anything else allows ``[]``. ``arguments``
    overrides a tool's argument schema by name (the backend's fallback when a schema cannot
    become a grammar).
    """
    names = [tool_function(t)["name"] for t in tools]
    chosen = _chosen_name(tool_choice)
    if chosen is not None and chosen not in names:
        raise ValueError(f"tool_choice names {chosen!r}, which is not among the tools {names}")
    overrides = arguments or {}
    items = [
        call_schema(name, overrides.get(name) or parameters_schema(tool))
        for name, tool in zip(names, tools, strict=True)
        if chosen is None or name == chosen
    ]
    schema: JSON = {
        "type": "array",
        "items": items[0] if len(items) == 1 else {"anyOf": items},
        "minItems": 1 if chosen is not None or tool_choice == "required" else 0,
    }
    if max_calls:
        schema["maxItems"] = max_calls
    return schema


def _chosen_name(tool_choice: str | JSON | None) -> str | None:
    if isinstance(tool_choice, dict):
        return tool_function(tool_choice)["name"]
    return None


def tool_prompt(tools: list[JSON], template: str = TOOL_PROMPT) -> str:
    """The instructions that describe ``tools`` to a model whose chat template cannot."""
    lines = []
    for tool in tools:
        body = tool_function(tool)
        entry = {"name": body["name"], "description": body.get("description", "")}
        entry["parameters"] = body.get("parameters") or {"type": "object", "properties": {}}
        lines.append(json.dumps(entry, ensure_ascii=False))
    return template.format(functions="\n".join(lines))


def parse_calls(text: str) -> tuple[tuple[ToolCall, ...], str | None]:
    """Calls from a (possibly truncated) JSON array of ``{"name", "arguments"}`` objects.

    Returns the complete calls and an error message (None when the array was complete): a
    grammar guarantees well-formed output, so only running out of tokens leaves a prefix, and
    the calls finished before the cut are still worth scoring.
    """
    decoder = json.JSONDecoder()
    start = text.find("[")
    if start < 0:
        return (), f"no JSON array in the output: {text[:80]!r}"
    pos, calls = _skip(text, start + 1), []
    while pos < len(text) and text[pos] != "]":
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            return tuple(calls), f"output cut short after {len(calls)} complete call(s)"
        try:
            calls.append(_to_call(item))
        except ValueError as exc:
            return tuple(calls), str(exc)
        pos = _skip(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip(text, pos + 1)
    if pos >= len(text):
        return tuple(calls), f"output cut short after {len(calls)} complete call(s)"
    return tuple(calls), None


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _to_call(item: Any) -> ToolCall:
    if not isinstance(item, dict) or "function" in item:
        raise ValueError(f"not a call object: {json.dumps(item)[:120]}")
    return ToolCall.from_openai(item)


_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def parse_tagged_calls(text: str) -> tuple[ToolCall, ...] | None:
    """Calls in the ``<tool_call>{json}</tool_call>`` convention (Hermes, Qwen, SmolLM3 and
    other templates that render tools), or None when the text holds none."""
    calls: list[ToolCall] = []
    for body in _TAGGED.findall(text):
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            continue
        for item in data if isinstance(data, list) else [data]:
            try:
                calls.append(_to_call(item))
            except (ValueError, json.JSONDecodeError):
                continue
    return tuple(calls) or None


def openai_tool(tool: JSON) -> JSON:
    """A tool as an OpenAI function tool whose parameters are a normalised JSON Schema."""
    body = tool_function(tool)
    return {"type": "function", "function": {**body, "parameters": parameters_schema(tool)}}


# --- messages for chat templates ---------------------------------------------------------------


def message_dict(message: Message) -> dict[str, Any]:
    """OpenAI-shaped message for templates: no None content (Jinja would print 'None'), and
    earlier calls as OpenAI ``tool_calls`` plus JSON text for templates that ignore them."""
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.tool_calls:
        out["tool_calls"] = [c.to_openai(f"call_{i}") for i, c in enumerate(message.tool_calls)]
        if not message.content:
            out["content"] = json.dumps([c.to_dict() for c in message.tool_calls])
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        out["name"] = message.name
    return out


def tool_messages(
    messages: tuple[Message, ...], tools: list[dict[str, Any]], template: str | None
) -> list[Message]:
    """The conversation with the tools described in the (first) system message."""
    text = tool_prompt(tools, template or TOOL_PROMPT)
    out = list(messages)
    if out and out[0].role == "system":
        out[0] = Message(role="system", content=f"{out[0].content or ''}\n\n{text}".strip())
    else:
        out.insert(0, Message(role="system", content=text))
    return out
