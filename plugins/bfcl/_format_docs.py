"""BFCL's function docs as XML, Python docstrings or JSON (``func_doc_fmt``), character for
character as ``bfcl_eval.model_handler.utils.format_function_doc`` writes them (quirks kept:
``required`` defaults to true when a schema has no ``required`` list, commas are removed from
a ``<param>`` tag's attributes, enum values and defaults are written with ``repr``)."""

from __future__ import annotations

import json
from typing import Any

PY_TYPES = {"string": "str", "number": "float", "integer": "int", "boolean": "bool"}
PY_INDENT = " " * 8  # inside the docstring block


def function_docs(functions: list[dict[str, Any]], doc_format: str) -> str:
    """The docs of ``functions`` in ``doc_format`` (``xml``, ``python`` or ``json``)."""
    if doc_format == "xml":
        return "\n".join(_xml_function(f) for f in functions)
    if doc_format == "python":
        return "\n\n".join(part for f in functions for part in (_python_function(f), "\n"))
    if doc_format == "json":
        return json.dumps(functions, indent=4)
    raise ValueError(f"Invalid function doc format: {doc_format}")


# --- XML ---------------------------------------------------------------------------------------


def _xml_function(function: dict[str, Any]) -> str:
    schema = function["parameters"]
    required = schema.get("required")
    params = "".join(
        _xml_param(name, meta, required, 2) for name, meta in schema.get("properties", {}).items()
    )
    return (
        f'<function name="{function["name"]}">\n'
        f"  <desc>{function.get('description', '')}</desc>\n"
        f"  <params>\n{params}  </params>\n</function>\n"
    )


def _xml_param(name: str, meta: dict[str, Any], required: list[str] | None, level: int) -> str:
    indent = " " * level * 2
    is_required = "true" if required is None or name in required else "false"
    attrs = [f'name="{name}", type="{_xml_type(meta)}", required="{is_required}"']
    if "default" in meta:
        attrs.append(f'default="{meta["default"]!r}"')
    parts = [f"{indent}<param " + " ".join(attrs).replace(",", "") + ">\n"]
    parts.append(f"{indent}  <desc>{_described(meta)}</desc>\n")
    if "properties" in meta:
        inner = meta.get("required")
        parts.append(f"{indent}  <params>\n")
        parts += [_xml_param(k, v, inner, level + 2) for k, v in meta["properties"].items()]
        parts.append(f"{indent}  </params>\n")
    parts.append(f"{indent}</param>\n")
    return "".join(parts)


def _xml_type(meta: dict[str, Any]) -> str:
    kind = meta.get("type", "string")
    if "items" in meta and "type" in meta["items"]:
        return f"{kind}[{meta['items']['type']}]"
    if "additionalProperties" in meta:
        return f"{kind}[{meta['additionalProperties'].get('type', 'string')}]"
    return str(kind)


def _described(meta: dict[str, Any]) -> str:
    text = str(meta.get("description", ""))
    return text + f" Enum values: {meta['enum']}." if "enum" in meta else text


# --- Python ------------------------------------------------------------------------------------


def _python_function(function: dict[str, Any]) -> str:
    lines = [f"# Function: {function['name']}\n", '    """\n']
    lines.append(f"    {function.get('description', '')}\n\n")
    properties = function.get("parameters", {}).get("properties", {})
    if properties:
        lines.append("    Args:\n")
        for name, meta in properties.items():
            lines += _python_param(name, meta, 0)
    lines.append('    """\n')
    return "".join(lines)


def _python_param(name: str, meta: dict[str, Any], depth: int) -> list[str]:
    indent = PY_INDENT + " " * 4 * depth
    default = f", default={meta['default']!r}" if "default" in meta else ""
    lines = [f"{indent}{name} ({_python_type(meta)}{default}): {_described(meta)}\n"]
    for child, child_meta in meta.get("properties", {}).items():
        lines += _python_param(child, child_meta, depth + 1)
    return lines


def _python_type(meta: dict[str, Any]) -> str:
    kind = meta.get("type", "string")
    if kind in PY_TYPES:
        return PY_TYPES[kind]
    if kind in ("array", "list", "tuple") and "items" in meta:
        return f"list[{_python_type(meta['items'])}]"
    if kind in ("object", "dict"):
        if "additionalProperties" in meta:
            return f"dict[str, {_python_type(meta['additionalProperties'])}]"
        return "dict"
    return str(kind)
