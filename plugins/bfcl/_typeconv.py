"""Java and JavaScript argument conversion with BFCL's exact semantics.

BFCL's decoders for ``simple_java`` and ``simple_javascript`` hand the checker every argument
as source text (``"42L"``, ``"new int[]{1, 2}"``, ``"[1, 2]"``). Before type checking, BFCL turns
that text into Python values with a handful of regular expressions. Whatever does not match a
pattern silently stays a string, and the later type check then fails on it (or, for a
ground-truth "variable" such as ``"docFields"``, passes). The verdicts depend on those exact
patterns, their quirks included, so the patterns below reproduce BFCL's (bfcl-eval 2026.3.23,
``eval_checker/ast_eval/type_convertor``) one for one. Notable quirks kept on purpose:

* Java ``char`` is never converted: BFCL's pattern (``^'.$'``) cannot match any string.
* Java ``String`` and ``any`` keep their quotes; JavaScript ``String`` strips one pair.
* Collections are found by searching (Java) or matching at the start (JavaScript), lazily, so
  nested collections are cut at the first closing bracket.
* ``$`` also matches before a final newline, exactly as in BFCL.
* ``Set``, ``Hashtable``, ``Queue`` and ``Stack`` raise ``NotImplementedError`` like BFCL does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

#: Declared Java type -> Python type the converted value must have (BFCL's JAVA_TYPE_CONVERSION).
JAVA_TYPES: dict[str, type] = {
    "byte": int,
    "short": int,
    "integer": int,
    "float": float,
    "double": float,
    "long": int,
    "boolean": bool,
    "char": str,
    "Array": list,
    "ArrayList": list,
    "Set": set,
    "HashMap": dict,
    "Hashtable": dict,
    "Queue": list,
    "Stack": list,
    "String": str,
    "any": str,
}

#: Declared JavaScript type -> Python type (BFCL's JS_TYPE_CONVERSION).
JS_TYPES: dict[str, type] = {
    "String": str,
    "integer": int,
    "float": float,
    "Bigint": int,
    "Boolean": bool,
    "dict": dict,
    "array": list,
    "any": str,
}

#: Declared types whose ``items`` type is passed to the converter (shared by Java and JS).
NESTED_CONVERSION_TYPES = frozenset({"Array", "ArrayList", "array"})

Converter = Callable[..., Any]

# ---------------------------------------------------------------- shared scalar patterns
_INTEGER = re.compile(r"^-?\d+$")
_TRAILING_F = re.compile(r"[fF]$")
_TRAILING_L = re.compile(r"[lL]$")

# ---------------------------------------------------------------- Java patterns
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_JAVA_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_BOOLEANS = {"true": True, "false": False}  # written alike in Java and JavaScript
_JAVA_LONG = re.compile(r"^-?\d+[lL]$")
_JAVA_AS_LIST = re.compile(r"new\s+ArrayList<\w*>\(Arrays\.asList\((.+?)\)\)")
_JAVA_ADD_BLOCK = re.compile(r"new\s+ArrayList<\w*>\(\)\s*\{\{\s*(.+?)\s*\}\}", re.DOTALL)
_JAVA_ADD_CALL = re.compile(r"add\((.+?)\)")
_JAVA_EMPTY_LIST = re.compile(r"new\s+ArrayList<\w*>\(\)")
_JAVA_ARRAY = re.compile(r"new\s+\w+\[\]\s*\{(.*?)\}")
_JAVA_MAP = re.compile(r"new\s+HashMap<.*?>\s*\(\)\s*\{\s*\{?\s*(.*?)\s*\}?\s*\}", re.DOTALL)
_JAVA_PUT_CALL = re.compile(r"put\(\"(.*?)\",\s*(.*?)\)")
_JAVA_EMPTY_MAP = re.compile(r"new\s+HashMap<.*?>\s*\(\)")
_JAVA_UNSUPPORTED = frozenset({"Set", "Hashtable", "Queue", "Stack"})

# ---------------------------------------------------------------- JavaScript patterns
_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JS_BIGINT = re.compile(r"^-?\d+n$")
_JS_ARRAY_2D = re.compile(
    r"\[\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\]|\bnew\s+Array\(\s*\[.*?\]\s*(,\s*\[.*?\]\s*)*\)"
)
_JS_ARRAY = re.compile(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)")
_JS_BRACKETED = re.compile(r"\[(.*?)\]")
_JS_OBJECT = re.compile(r"\{(.*?)\}")
_JS_PAIR = re.compile(r"([^:]+):\s*(.*?)(?:,\s*(?=[^,]+:)|$)")


def _is_quoted(text: str, quotes: str) -> bool:
    """True when ``text`` starts and ends with the same one of ``quotes`` (a lone quote counts)."""
    return any(text.startswith(q) and text.endswith(q) for q in quotes)


def _int_or_float_or_text(text: str) -> Any:
    """Python's ``int()`` then ``float()``, else the text: BFCL's fallback for untyped literals."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


# ================================================================ Java
def java_convert(value: str, type_name: str, nested_type: str | None = None) -> Any:
    """Convert Java source text for a parameter declared as ``type_name``, as BFCL does."""
    if type_name not in JAVA_TYPES:
        raise ValueError(f"Unsupported type: {type_name}")
    if type_name in ("byte", "short", "integer"):
        return int(value) if _INTEGER.match(value) else value
    if type_name == "float":
        return float(_TRAILING_F.sub("", value)) if _JAVA_FLOAT.match(value) else value
    if type_name == "double":
        return float(value) if _JAVA_DOUBLE.match(value) else value
    if type_name == "long":
        return int(_TRAILING_L.sub("", value)) if _JAVA_LONG.match(value) else value
    if type_name == "boolean":
        return value == "true" if value in ("true", "false") else value
    if type_name == "Array":
        return _java_array(value, nested_type)
    if type_name == "ArrayList":
        return _java_array_list(value, nested_type)
    if type_name == "HashMap":
        return _java_hash_map(value)
    if type_name in _JAVA_UNSUPPORTED:
        raise NotImplementedError(f"{type_name} conversion is not implemented")
    # String, any and char (BFCL's char pattern never matches) stay text.
    return str(value)


def _java_literal(text: str) -> Any:
    """Convert one untyped Java literal (used when no element type is known)."""
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    if _is_quoted(text, '"'):
        return text[1:-1]
    if _JAVA_LONG.match(text):
        return int(text[:-1])
    if _JAVA_FLOAT.match(text):
        return float(_TRAILING_F.sub("", text))
    return _int_or_float_or_text(text)


def _java_list_element(text: str, nested_type: str | None) -> Any:
    """Convert one ArrayList element: quoted char/String elements lose their quotes."""
    if nested_type in ("char", "String"):
        return text[1:-1]
    if nested_type:
        return java_convert(text, nested_type)
    return _java_literal(text)


def _java_array_list(text: str, nested_type: str | None) -> Any:
    """``new ArrayList<>(Arrays.asList(...))``, ``new ArrayList<>() {{ add(...); }}`` or empty."""
    match = _JAVA_AS_LIST.search(text)
    if match:
        parts = match.group(1).split(",")
        return [_java_list_element(part.strip(), nested_type) for part in parts]
    match = _JAVA_ADD_BLOCK.search(text)
    if match:
        parts = _JAVA_ADD_CALL.findall(match.group(1))
        return [_java_list_element(part.strip(), nested_type) for part in parts]
    if _JAVA_EMPTY_LIST.search(text):
        return []
    return text


def _java_array(text: str, nested_type: str | None) -> Any:
    """``new T[]{a, b}``; unlike ArrayList, typed String elements keep their quotes."""
    match = _JAVA_ARRAY.search(text)
    if not match:
        return text
    parts = [part.strip() for part in match.group(1).split(",")]
    if nested_type:
        return [java_convert(part, nested_type) for part in parts if part]
    return [_java_literal(part) for part in parts if part]


def _java_hash_map(text: str) -> Any:
    """``new HashMap<..>() {{ put("k", v); }}``; values are untyped literals, last put wins."""
    match = _JAVA_MAP.search(text)
    if match:
        body = match.group(1)
        if not body.strip():
            return {}
        return {key: _java_literal(raw.strip()) for key, raw in _JAVA_PUT_CALL.findall(body)}
    if _JAVA_EMPTY_MAP.search(text):
        return {}
    return text


# ================================================================ JavaScript
def js_convert(value: str, type_name: str, nested_type: str | None = None) -> Any:
    """Convert JavaScript source text for a parameter declared as ``type_name``, as BFCL does."""
    if type_name not in JS_TYPES:
        raise ValueError(f"Unsupported type: {type_name}")
    if type_name == "String":
        return value[1:-1] if _is_quoted(value, "\"'") else value
    if type_name == "integer":
        return int(value) if _INTEGER.match(value) else value
    if type_name == "float":
        return float(value) if _JS_FLOAT.match(value) else value
    if type_name == "Bigint":
        return int(value[:-1]) if _JS_BIGINT.match(value) else value
    if type_name == "Boolean":
        return value == "true" if value in ("true", "false") else value
    if type_name == "dict":
        return _js_object(value.strip())
    if type_name == "array":
        return _js_array(value.strip(), nested_type)
    return str(value)  # any


def _js_literal(text: str) -> Any:
    """Convert one untyped JavaScript literal."""
    text = text.strip()
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    if _is_quoted(text, "\"'"):
        return text[1:-1]
    return _int_or_float_or_text(text)


def _js_array(code: str, nested_type: str | None) -> Any:
    """Arrays and 2-D arrays; any exception while converting keeps the text (BFCL's bare except)."""
    try:
        match = _JS_ARRAY_2D.match(code)
        if match:
            return _js_rows(match.group(0))
        match = _JS_ARRAY.match(code)
        if not match:
            return code
        return _js_elements(_js_array_body(match), nested_type)
    except Exception:
        return code


def _js_rows(text: str) -> list[list[Any]]:
    """Rows of a 2-D array: element types are never enforced here, even with a nested type."""
    rows = []
    for index, row in enumerate(_JS_BRACKETED.findall(text)):
        row = row.strip()
        if index == 0 and row.startswith("["):
            row = row[1:]
        rows.append([_js_literal(cell.strip()) for cell in row.split(",")])
    return rows


def _js_array_body(match: re.Match[str]) -> list[str]:
    """Comma-separated parts of ``[...]`` or ``new Array(...)``; an empty body has no parts."""
    body = match.group(1) if match.group(1) is not None else match.group(2)
    if body is None or not body.strip():
        return []
    return body.strip().split(",")


def _js_elements(parts: list[str], nested_type: str | None) -> list[Any]:
    """Convert array parts with the declared item type, or as untyped literals."""
    if not nested_type:
        return [_js_literal(part.strip()) for part in parts]
    converted = []
    for part in parts:
        part = part.strip()
        inner = "String" if part.startswith(("'", '"')) else None
        converted.append(js_convert(part, nested_type, inner))
    return converted


def _js_object(code: str) -> Any:
    """``{key: value, ...}`` up to the first ``}``; nested arrays/objects are converted too."""
    if code == "{}":
        return {}
    match = _JS_OBJECT.match(code)
    if not match:
        return code
    try:
        result = {}
        for raw_key, raw_value in _JS_PAIR.findall(match.group(1)):
            result[raw_key.strip().strip("'\"")] = _js_object_value(raw_value.strip())
        return result
    except Exception:
        return code


def _js_object_value(text: str) -> Any:
    """One value inside a JavaScript object literal."""
    if text.startswith("[") and text.endswith("]"):
        return _js_array(text, None)
    if text.startswith("{") and text.endswith("}"):
        return _js_object(text)
    return _js_literal(text.strip("'\""))
