"""Turn jsonschema errors into one actionable line each: ``path.to.field: what is wrong``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, FormatChecker

from harness.schema import resolve_path

TYPE_NAMES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def schema_problems(
    instance: Any, schema: dict[str, Any], prefix: str, base_dir: Path | None = None
) -> list[str]:
    """Validate ``instance``; return one ``path: message`` line per problem, sorted by path."""
    validator = Draft202012Validator(schema, format_checker=_format_checker(base_dir))
    problems = []
    for error in validator.iter_errors(instance):
        problems += _describe(error, prefix)
    return sorted(dict.fromkeys(problems))


def _format_checker(base_dir: Path | None) -> FormatChecker:
    checker = FormatChecker(formats=())

    @checker.checks("file", raises=FileNotFoundError)
    def _file_exists(value: object) -> bool:
        if not isinstance(value, str) or base_dir is None:
            return True
        path = resolve_path(value, base_dir)
        if not path.is_file():
            raise FileNotFoundError(str(path))
        return True

    @checker.checks("path")
    def _any_path(value: object) -> bool:
        return True

    return checker


def field_path(prefix: str, parts: Any) -> str:
    out = prefix
    for part in parts:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else part)
    return out or "(top level)"


def _describe(error: jsonschema.ValidationError, prefix: str) -> list[str]:
    where = field_path(prefix, error.absolute_path)
    kind, inst, schema = error.validator, error.instance, error.schema
    if kind == "additionalProperties" and isinstance(inst, dict):
        return _unknown_keys(error, prefix)
    if kind == "required":
        missing = [k for k in error.validator_value if k not in inst]
        return [
            f"{field_path(prefix, [*error.absolute_path, k])}: is required but missing"
            for k in missing
        ]
    return [f"{where}: {_message(kind, inst, schema, error)}"]


def _unknown_keys(error: jsonschema.ValidationError, prefix: str) -> list[str]:
    allowed = sorted(error.schema.get("properties", {}))
    out = []
    for key in sorted(k for k in error.instance if k not in allowed):
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        listing = ", ".join(allowed) or "none"
        where = field_path(prefix, [*error.absolute_path, key])
        out.append(f"{where}: unknown key; {hint}allowed keys: {listing}")
    return out


def _message(kind: str, inst: Any, schema: dict[str, Any], error: Any) -> str:
    if kind == "type":
        wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        names = " or ".join(TYPE_NAMES.get(t, t) for t in wanted)
        return f"expected {names}, got {_show(inst)}"
    if kind == "format" and schema.get("format") == "file":
        return f"file not found: {error.cause} (paths are relative to the manifest's folder)"
    if kind == "enum":
        return f"{_show(inst)} is not allowed; use one of {', '.join(map(repr, schema['enum']))}"
    if kind == "const":
        return f"{_show(inst)} is not allowed; expected {schema['const']!r}"
    if kind == "minItems":
        return f"needs at least {schema['minItems']} item(s); the list is empty or too short"
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return f"{_show(inst)} is out of range ({kind} {schema[kind]})"
    if kind == "minLength":
        return "must not be empty"
    if kind == "pattern":
        return f"{_show(inst)} does not match the pattern {schema['pattern']}"
    return error.message


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
