"""Executable tool sets written for this project, and the registry the sandbox runs them from.

A tool set is an allow-list: one module file and the names of the functions in it that may
run, each with a JSON-Schema parameter spec (``{"name", "description", "parameters"}``) so a
task can offer it as an OpenAI tool. The sandbox (:mod:`harness_plugins.shared.sandbox`) looks a
model's function name up here and nowhere else: a name that is not registered never reaches
``import`` or ``getattr``.

Tool set modules are loaded by file path in a ``python -I -S`` child, so each must be
self-contained: standard library only, no relative imports, every import at the top (the child
drops privileges after loading the module and may no longer read the standard library), data
inline (the specs in a JSON file beside the module, read when it loads), deterministic,
offline.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from . import files
from . import math_tools
from . import movies
from . import weather

JSON_TO_PYTHON = {
    "string": "str",
    "integer": "int",
    "number": "float",
    "boolean": "bool",
    "array": "list",
    "object": "dict",
}


@dataclass(frozen=True)
class ToolSet:
    """A module file plus the specs of the functions in it that may run (the allow-list)."""

    name: str
    path: Path
    functions: tuple[dict[str, Any], ...]

    @classmethod
    def from_module(cls, name: str, module: ModuleType) -> ToolSet:
        """Build from a module that lists its specs in ``TOOLS``."""
        return cls(name, Path(module.__file__ or ""), tuple(module.TOOLS))

    def names(self) -> list[str]:
        return [f["name"] for f in self.functions]

    def spec(self, function: str) -> dict[str, Any] | None:
        """The spec of a registered function, or None (never a lookup in the module)."""
        return next((f for f in self.functions if f["name"] == function), None)

    def openai_tools(self) -> list[dict[str, Any]]:
        """The functions as OpenAI tools (``{"type": "function", "function": spec}``)."""
        return [{"type": "function", "function": dict(f)} for f in self.functions]

    def apigen_tools(self) -> list[dict[str, Any]]:
        """The functions in APIGen's spec format (flat parameters, Python type names)."""
        return [apigen_tool(f) for f in self.functions]


def apigen_tool(spec: dict[str, Any]) -> dict[str, Any]:
    """A JSON-Schema spec as an APIGen/xLAM tool (``"int, optional"`` style types)."""
    params = spec.get("parameters") or {}
    required = set(params.get("required") or [])
    flat = {}
    for arg, prop in (params.get("properties") or {}).items():
        kind = JSON_TO_PYTHON.get(prop.get("type", ""), "Any")
        flat[arg] = {
            "description": prop.get("description", ""),
            "type": kind if arg in required else f"{kind}, optional",
            "default": "" if "default" not in prop else str(prop["default"]),
        }
    return {"name": spec["name"], "description": spec.get("description", ""), "parameters": flat}


TOOLSETS: dict[str, ToolSet] = {
    "weather": ToolSet.from_module("weather", weather),
    "math_tools": ToolSet.from_module("math_tools", math_tools),
    "movies": ToolSet.from_module("movies", movies),
    "files": ToolSet.from_module("files", files),
}
_LOCK = threading.Lock()


def get_toolset(name: str) -> ToolSet:
    """The registered tool set called ``name``; a KeyError names the known ones."""
    try:
        return TOOLSETS[name]
    except KeyError:
        raise KeyError(f"unknown tool set {name!r}; known: {', '.join(sorted(TOOLSETS))}") from None


def register_toolset(toolset: ToolSet) -> None:
    """Add a tool set (third-party code, tests). Its module must follow the rules above."""
    with _LOCK:
        if toolset.name in TOOLSETS and TOOLSETS[toolset.name] != toolset:
            raise ValueError(f"tool set {toolset.name!r} is already registered")
        TOOLSETS[toolset.name] = toolset


def unregister_toolset(name: str) -> None:
    with _LOCK:
        TOOLSETS.pop(name, None)
