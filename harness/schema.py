"""JSON Schemas: the core's manifest schema, each plugin's parameter schema, and the two composed.

Plugins declare parameters as JSON Schema objects. Two custom formats let them ask for files:
``"format": "file"`` (must exist) and ``"format": "path"`` (may not exist yet); both are
resolved against the manifest's folder before the plugin sees them.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from harness.registry import MANIFEST_KINDS, Catalog, Component

SECTIONS = {"backend": "backends", "task": "tasks", "metric": "metrics"}
FILE_FORMATS = ("file", "path")


@cache
def core_schema() -> dict[str, Any]:
    """The core manifest schema shipped in ``registry/schemas/manifest.schema.json``."""
    text = resources.files("harness_registry").joinpath("schemas/manifest.schema.json")
    return json.loads(text.read_text(encoding="utf-8"))


def entry_schema(component: Component) -> dict[str, Any]:
    """A plugin's parameter schema plus the core's ``type`` and ``id``; unknown keys rejected."""
    schema = copy.deepcopy(component.schema) or {}
    schema.setdefault("type", "object")
    properties = schema.setdefault("properties", {})
    properties["type"] = {"const": component.name, "description": "The plugin's name."}
    properties["id"] = core_schema()["$defs"]["entry"]["properties"]["id"]
    schema.setdefault("additionalProperties", False)
    schema["required"] = sorted({"type", *schema.get("required", [])})
    schema.setdefault("description", component.description)
    return schema


def composed_schema(catalog: Catalog) -> dict[str, Any]:
    """The whole manifest schema: the core plus every installed plugin's parameters.

    Each list item is checked against the schema of the plugin its ``type`` names, with
    ``if``/``then`` so editors can complete the parameters of each plugin.
    """
    schema = copy.deepcopy(core_schema())
    defs = schema["$defs"]
    for kind in MANIFEST_KINDS:
        names = catalog.names(kind)
        branches = []
        for name in names:
            key = f"{kind}.{name}"
            defs[key] = entry_schema(catalog.get(kind, name))
            branches.append(
                {
                    "if": {"properties": {"type": {"const": name}}},
                    "then": {"$ref": f"#/$defs/{key}"},
                }
            )
        defs[kind] = {
            "allOf": [{"$ref": "#/$defs/entry"}, *branches],
            "properties": {"type": {"enum": names}} if names else {},
        }
        schema["properties"][SECTIONS[kind]]["items"] = {"$ref": f"#/$defs/{kind}"}
    return schema


def file_fields(schema: dict[str, Any]) -> dict[str, str]:
    """Top-level parameters whose values are file paths, with their format."""
    props = schema.get("properties", {})
    return {k: v["format"] for k, v in props.items() if v.get("format") in FILE_FORMATS}


def resolve_path(value: str, base_dir: Path) -> Path:
    """Expand ``~`` and resolve a relative path against the manifest's folder."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path)


def with_defaults(params: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Fill top-level parameters the user left out with the schema's ``default`` values."""
    out = dict(params)
    for key, prop in schema.get("properties", {}).items():
        if key not in out and key not in ("type", "id") and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out
