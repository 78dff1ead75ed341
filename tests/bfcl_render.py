"""Calls written in each of BFCL's return formats (python, json, verbose_xml, concise_xml),
with or without the <TOOLCALL> tag: what a model following each configuration's prompt would
answer. Tests only (replayed ground truth must score 1.0 under every configuration)."""

from __future__ import annotations

import json
from typing import Any
from xml.sax.saxutils import escape
from xml.sax.saxutils import quoteattr

Call = dict[str, dict[str, Any]]


def render(calls: list[Call], ret_fmt: str, tag: bool) -> str:
    text = RENDERERS[ret_fmt](calls)
    return f"<TOOLCALL>{text}</TOOLCALL>" if tag else text


def python_text(calls: list[Call]) -> str:
    parts = []
    for call in calls:
        ((name, args),) = call.items()
        parts.append(f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")")
    return "[" + ", ".join(parts) + "]"


def json_text(calls: list[Call]) -> str:
    items = [{"function": n, "parameters": a} for c in calls for n, a in c.items()]
    return "```json\n" + json.dumps(items, ensure_ascii=False) + "\n```"


def xml_type(value: Any) -> str:
    for kind, name in ((bool, "boolean"), (int, "integer"), (float, "float"), (str, "string")):
        if isinstance(value, kind):
            return name
    if value is None:
        return "null"
    return {list: "array", tuple: "tuple", dict: "dict"}[type(value)]


def xml_value(value: Any) -> str:
    return repr(value) if isinstance(value, list | tuple | dict) else str(value)


def verbose_xml_text(calls: list[Call]) -> str:
    out = []
    for call in calls:
        ((name, args),) = call.items()
        params = "".join(
            f'<param name={quoteattr(k)} value={quoteattr(xml_value(v))} type="{xml_type(v)}"/>'
            for k, v in args.items()
        )
        out.append(f"<function name={quoteattr(name)}><params>{params}</params></function>")
    return "<functions>" + "".join(out) + "</functions>"


def concise_xml_text(calls: list[Call]) -> str:
    out = []
    for call in calls:
        ((name, args),) = call.items()
        params = "".join(
            f'<param name={quoteattr(k)} type="{xml_type(v)}">{escape(xml_value(v))}</param>'
            for k, v in args.items()
        )
        out.append(f"<function name={quoteattr(name)}>{params}</function>")
    return "<functions>" + "".join(out) + "</functions>"


RENDERERS = {
    "python": python_text,
    "json": json_text,
    "verbose_xml": verbose_xml_text,
    "concise_xml": concise_xml_text,
}
