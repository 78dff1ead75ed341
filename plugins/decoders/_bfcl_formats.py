"""Decoder ``bfcl_format``: answers in each of BFCL's return formats, read as BFCL's
``default_decode_ast_prompting`` reads them (``ast_parse`` and its JSON and XML parsers), rule
for rule, so a decoded answer scores as BFCL would score it:

- every format: strip backticks, newlines and spaces, add ``[``/``]`` where missing; with the
  tool-call tag, the text inside the first ``<TOOLCALL>...</TOOLCALL>`` (none: a decode error);
- ``python``: ``[f(a=1)]`` with ``ast`` (the ``python_calls`` decoder's walk);
- ``json``: the outermost ``[...]``, then BFCL's list-of-objects pattern, then ``json.loads``
  of ``[{"function": ..., "parameters": {...}}]``; text that is not JSON is *no call*, as in
  BFCL (which returns ``[]`` there);
- ``verbose_xml`` / ``concise_xml``: the first ``<functions>...</functions>``, parsed with
  ElementTree (a DOCTYPE or entity declaration is refused first); a parameter's ``type``
  converts its text: ``integer``, ``float``, ``boolean``, ``null``, and ``array``, ``tuple``,
  ``object``, ``dict`` through ``ast.literal_eval`` (literals only, never evaluated).
"""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from harness import DecodeError
from harness import Decoder
from harness import ToolCall

from . import BFCLFormatParams
from ._decoders import bfcl_wrap
from ._decoders import parse_python_body

#: longest answer read (BFCL's JSON pattern backtracks; an answer is a few thousand characters)
MAX_CHARS = 200_000
_TAG = re.compile(r"<TOOLCALL>(.*?)</TOOLCALL>", re.DOTALL)
_FUNCTIONS = re.compile(r"<functions>(.*?)</functions>", re.DOTALL)
_OUTER_LIST = re.compile(r"\[.*\]", re.DOTALL)
_JSON_CALLS = re.compile(r"\[\s*{.*?}\s*(?:,\s*{.*?}\s*)*\]", re.DOTALL)
_LITERAL_TYPES = frozenset({"array", "tuple", "object", "dict"})


class BFCLFormatCalls(Decoder):
    """An answer in one of BFCL's four return formats, with or without the tool-call tag."""

    params: BFCLFormatParams

    def decode(self, text: str | None, tool_calls: tuple[ToolCall, ...] | None) -> list[ToolCall]:
        if text is None or not text.strip():
            raise DecodeError("empty", "no text to decode")
        if len(text) > MAX_CHARS:
            raise DecodeError("syntax", f"answer longer than {MAX_CHARS} characters")
        body = bfcl_wrap(text)
        if self.params.tool_call_tag:
            body = _inside_tag(body)
        return [ToolCall(n, a) for n, a in READERS[self.params.ret_fmt](body)]


def _inside_tag(body: str) -> str:
    match = _TAG.search(body)
    if match is None:
        raise DecodeError("syntax", "no <TOOLCALL>...</TOOLCALL> in the answer")
    return match.group(1).strip()


def read_json(body: str) -> list[tuple[str, dict[str, Any]]]:
    """BFCL's ``parse_json_function_call`` after ``ast_parse``'s outermost-list cut."""
    outer = _OUTER_LIST.search(body)
    source = outer.group(0) if outer else body
    calls = _JSON_CALLS.search(source)
    source = calls.group(0) if calls else source
    try:
        data = json.loads(source)
    except (ValueError, RecursionError):
        return []  # BFCL: not JSON is no call
    return [_json_call(item) for item in _iterable(data) if isinstance(item, dict)]


def _iterable(data: Any) -> list[Any]:
    """What ``for item in data`` walks in BFCL (a dict's keys, a string's characters)."""
    return list(data) if isinstance(data, list | dict | str) else []


def _json_call(item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name, args = item.get("function"), item.get("parameters")
    if "function" not in item or "parameters" not in item:
        raise DecodeError("shape", 'a call needs "function" and "parameters"')
    if not isinstance(name, str) or not isinstance(args, dict):
        raise DecodeError("shape", "a call needs a string name and an object of parameters")
    return name, args


def read_xml(body: str, verbose: bool) -> list[tuple[str, dict[str, Any]]]:
    """BFCL's ``parse_verbose_xml_function_call`` / ``parse_concise_xml_function_call``."""
    match = _FUNCTIONS.search(body)
    if match is None:
        raise DecodeError("syntax", "no <functions>...</functions> in the answer")
    source = match.group(0)
    if "<!DOCTYPE" in source or "<!ENTITY" in source:
        raise DecodeError("syntax", "a DOCTYPE or entity declaration in the answer")
    try:
        root = ET.fromstring(source)
    except ET.ParseError as exc:
        raise DecodeError("syntax", f"not XML: {exc}") from None
    return [_xml_call(f, verbose) for f in root.findall("function")]


def _xml_call(function: ET.Element, verbose: bool) -> tuple[str, dict[str, Any]]:
    if "name" not in function.attrib:
        raise DecodeError("shape", "a <function> without a name")
    params = function.find("params") if verbose else None
    elements = (params if params is not None else function).findall("param")
    args: dict[str, Any] = {}
    for element in elements:
        raw = element.attrib.get("value", "") if verbose else (element.text or "").strip()
        name = element.attrib.get("name") if verbose else _required_name(element)
        args[str(name) if name is not None else "None"] = typed(raw, element.attrib.get("type"))
    return function.attrib["name"], args


def _required_name(element: ET.Element) -> str:
    if "name" not in element.attrib:
        raise DecodeError("shape", "a <param> without a name")
    return element.attrib["name"]


def typed(raw: str, kind: str | None) -> Any:
    """BFCL's ``convert_value_by_type``; literals through ``ast.literal_eval`` only."""
    try:
        if kind == "integer":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "boolean":
            return raw.lower() == "true"
        if kind == "null":
            return None
        if kind in _LITERAL_TYPES:
            return ast.literal_eval(raw)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise DecodeError("syntax", f"a {kind} parameter that is not one: {exc}") from None
    return raw


READERS = {
    "python": parse_python_body,
    "json": read_json,
    "verbose_xml": lambda body: read_xml(body, verbose=True),
    "concise_xml": lambda body: read_xml(body, verbose=False),
}
