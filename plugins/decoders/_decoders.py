"""The built-in decoders (registered by :mod:`harness_plugins.decoders`)."""

from __future__ import annotations

import ast
import json
import operator
import re
from typing import Any

from harness import DecodeError
from harness import Decoder
from harness import ToolCall

# --- Python call lists (BFCL's prompt format) -------------------------------------------------


class PythonCalls(Decoder):
    """``[f(a=1), g(b="x")]``: BFCL's prompt-mode answer format."""

    def decode(self, text: str | None, tool_calls: tuple[ToolCall, ...] | None) -> list[ToolCall]:
        if text is None or not text.strip():
            raise DecodeError("empty", "no text to decode")
        return [ToolCall(name, args) for name, args in parse_python_calls(text)]


def parse_python_calls(text: str) -> list[tuple[str, dict[str, Any]]]:
    """BFCL's wrapping (strip fences and spaces, add brackets) then a safe AST walk."""
    return parse_python_body(bfcl_wrap(text))


def bfcl_wrap(text: str) -> str:
    """What BFCL's prompt-mode decoder does first, whatever the return format: strip fences
    and spaces, then add the brackets of a list where missing."""
    body = text.strip("`\n ")
    if not body.startswith("["):
        body = "[" + body
    if not body.endswith("]"):
        body = body + "]"
    return body


def parse_python_body(body: str) -> list[tuple[str, dict[str, Any]]]:
    """A call, or a list or tuple of calls, read with ``ast`` (never evaluated)."""
    try:
        tree = ast.parse(body.strip().strip("'"), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise DecodeError("syntax", f"not a Python call list: {exc}") from None
    node = tree.body
    elements = [node] if isinstance(node, ast.Call) else getattr(node, "elts", None)
    if elements is None or not all(isinstance(e, ast.Call) for e in elements):
        raise DecodeError("shape", "expected a list of function calls")
    return [_call(e) for e in elements]


def _call(node: ast.Call) -> tuple[str, dict[str, Any]]:
    """Name (dotted attributes joined) and keyword arguments; BFCL ignores positional ones."""
    parts = []
    func: ast.expr = node.func
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    name = ".".join(reversed(parts))
    return name, {kw.arg: _value(kw.value) for kw in node.keywords if kw.arg is not None}


def _value(node: ast.expr) -> Any:
    handler = _VALUE_HANDLERS.get(type(node))
    if handler is None:
        raise DecodeError("syntax", f"unsupported argument syntax: {type(node).__name__}")
    return handler(node)


def _constant(node: ast.Constant) -> Any:
    return "..." if node.value is Ellipsis else node.value


def _unary(node: ast.UnaryOp) -> Any:
    # BFCL negates the operand's constant whatever the operator is; so do we.
    operand = node.operand
    if not isinstance(operand, ast.Constant) or not isinstance(
        operand.value, int | float | complex
    ):
        raise DecodeError("syntax", "unsupported unary expression")
    return -operand.value


def _dict(node: ast.Dict) -> dict[Any, Any]:
    try:
        return {_value(k): _value(v) for k, v in zip(node.keys, node.values, strict=True)}
    except TypeError as exc:  # an unhashable key, or ``**spread``
        raise DecodeError("syntax", f"unsupported dictionary: {exc}") from None


def _nested_call(node: ast.Call) -> Any:
    if not node.keywords:
        return ast.unparse(node)
    name, args = _call(node)
    return {name: args}


def _subscript(node: ast.Subscript) -> str:
    return ast.unparse(node.value) + "[" + ast.unparse(node.slice) + "]"


_VALUE_HANDLERS: dict[type, Any] = {
    ast.Constant: _constant,
    ast.UnaryOp: _unary,
    ast.List: lambda n: [_value(v) for v in n.elts],
    ast.Tuple: lambda n: tuple(_value(v) for v in n.elts),
    ast.Dict: _dict,
    ast.Name: lambda n: n.id,
    ast.Call: _nested_call,
    ast.Subscript: _subscript,
    ast.BinOp: lambda n: _arithmetic(n),
}

# --- safe arithmetic (instead of BFCL's eval) ------------------------------------------------

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_MAX_MAGNITUDE = 1e300
_MAX_TEXT = 1_000_000


def _arithmetic(node: ast.expr) -> Any:
    """Numbers and strings under + - * / // % **, bounded so no answer can exhaust memory."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _arithmetic(node.operand)
        if isinstance(value, str):
            raise DecodeError("syntax", "unary sign on a string")
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _arithmetic(node.left), _arithmetic(node.right)
        _check_bounds(node.op, left, right)
        try:
            return _OPERATORS[type(node.op)](left, right)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise DecodeError("syntax", f"bad arithmetic in an argument: {exc}") from None
    raise DecodeError("syntax", "an argument expression that is not plain arithmetic")


def _check_bounds(op: ast.operator, left: Any, right: Any) -> None:
    numbers = [v for v in (left, right) if isinstance(v, int | float)]
    if any(abs(v) > _MAX_MAGNITUDE for v in numbers):
        raise DecodeError("syntax", "number too large in an argument expression")
    if isinstance(op, ast.Pow) and isinstance(right, int | float) and abs(right) > 1000:
        raise DecodeError("syntax", "exponent too large in an argument expression")
    if isinstance(op, ast.Mult) and any(isinstance(v, str) for v in (left, right)):
        count = right if isinstance(left, str) else left
        text = left if isinstance(left, str) else right
        if isinstance(count, int) and len(text) * max(count, 0) > _MAX_TEXT:
            raise DecodeError("syntax", "string too long in an argument expression")


# --- JSON-based formats ----------------------------------------------------------------------

_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def load_json(text: str | None) -> Any:
    if text is None or not text.strip():
        raise DecodeError("empty", "no text to decode")
    try:
        return json.loads(_FENCE.sub("", text.strip()))
    except json.JSONDecodeError as exc:
        raise DecodeError("syntax", f"not JSON: {exc.msg} at {exc.pos}") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, 10,000-deep nesting
        raise DecodeError("syntax", f"unreadable JSON: {str(exc).split(':')[0]}") from None


def call_from_object(obj: Any) -> ToolCall:
    """``{"name", "arguments"}`` or BFCL's ``{"function", "parameters"}``; JSON-string args ok."""
    if not isinstance(obj, dict):
        raise DecodeError("shape", "a call must be a JSON object")
    name = obj.get("name", obj.get("function"))
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (ValueError, RecursionError) as exc:
            reason = str(exc).split(":")[0]
            raise DecodeError("syntax", f"arguments are not JSON: {reason}") from None
    if not isinstance(name, str) or not isinstance(args, dict):
        raise DecodeError("shape", "a call needs a string name and an object of arguments")
    return ToolCall(name, args)


class JsonCalls(Decoder):
    """``[{"name": ..., "arguments": {...}}]`` (or one object; fences allowed)."""

    def decode(self, text: str | None, tool_calls: tuple[ToolCall, ...] | None) -> list[ToolCall]:
        data = load_json(text)
        items = data if isinstance(data, list) else [data]
        return [call_from_object(item) for item in items]


class OpenAIToolCalls(Decoder):
    """The backend's native tool calls; a response without any means "no call"."""

    def decode(self, text: str | None, tool_calls: tuple[ToolCall, ...] | None) -> list[ToolCall]:
        return list(tool_calls or [])


class XLAMCalls(Decoder):
    """xLAM's ``{"thought": ..., "tool_calls": [{"name", "arguments"}]}`` object."""

    def decode(self, text: str | None, tool_calls: tuple[ToolCall, ...] | None) -> list[ToolCall]:
        data = load_json(text)
        if not isinstance(data, dict):
            raise DecodeError("shape", 'expected an object with "tool_calls"')
        calls = data.get("tool_calls") or []
        if not isinstance(calls, list):
            raise DecodeError("shape", '"tool_calls" must be a list')
        return [call_from_object(item) for item in calls]


_HERMES = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)


class HermesCalls(Decoder):
    """``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` tags (or a list inside one);
    text without tags means "no call"."""

    def decode(self, text: str | None, tool_calls: tuple[ToolCall, ...] | None) -> list[ToolCall]:
        calls: list[ToolCall] = []
        for body in _HERMES.findall(text or ""):
            data = load_json(body)
            calls += [call_from_object(i) for i in (data if isinstance(data, list) else [data])]
        return calls
