"""Parameters and JSON Schemas: how a plugin declares its parameters (:class:`Params`), the
core's manifest schema, each entry's schema, the two composed, and jsonschema's errors turned
into one actionable line each (``path.to.field: what is wrong``).

Two custom formats let plugins ask for files: ``"format": "file"`` (must exist) and
``"format": "path"`` (may not exist yet); both are resolved against the manifest's folder
before the plugin sees them.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import MISSING
from dataclasses import Field
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from functools import cache
from importlib import resources
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING
from typing import Annotated
from typing import Any
from typing import Literal
from typing import TypeVar
from typing import Union
from typing import dataclass_transform
from typing import get_args
from typing import get_origin
from typing import get_type_hints

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema import FormatChecker

if TYPE_CHECKING:
    from harness._plugins import Catalog
    from harness._plugins import Component

KINDS = ("backend", "task", "metric", "decoder", "environment", "agent")
MANIFEST_KINDS = ("backend", "task", "metric")  # the kinds a manifest lists as entries

SECTIONS = {"backend": "backends", "task": "tasks", "metric": "metrics"}
FILE_FORMATS = ("file", "path")


@cache
def core_schema() -> dict[str, Any]:
    """The core manifest schema shipped in ``registry/schemas/manifest.schema.json``."""
    text = resources.files("harness_registry").joinpath("schemas/manifest.schema.json")
    schema: dict[str, Any] = json.loads(text.read_text(encoding="utf-8"))
    return schema


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


def resolve_params(
    component: Component, item: Mapping[str, Any], where: str, base_dir: Path
) -> tuple[dict[str, Any], list[str]]:
    """Validate a manifest-style entry (``{"type", "id"?, params...}``) against its plugin's
    schema. Returns the parameters its factory receives (defaults filled in, file paths
    absolute) and the problems, one line each (none when valid). The one place entries are
    resolved: manifests, ``BuildContext.build`` and ``harness serve`` all come through here."""
    schema = entry_schema(component)
    problems = schema_problems(dict(item), schema, where, base_dir)
    if problems:
        return {}, problems
    params = with_defaults({k: v for k, v in item.items() if k not in ("type", "id")}, schema)
    for key in file_fields(schema):
        if isinstance(params.get(key), str):
            params[key] = str(resolve_path(params[key], base_dir))
    if component.params_class is not None:
        checked = component.params_class.from_mapping(params).preflight(base_dir)
        problems = [f"{where}.{line}" for line in checked]
    return params, problems


def with_defaults(params: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Fill top-level parameters the user left out with the schema's ``default`` values."""
    out = dict(params)
    for key, prop in schema.get("properties", {}).items():
        if key not in out and key not in ("type", "id") and "default" in prop:
            out[key] = copy.deepcopy(prop["default"])
    return out


# --- validation -----------------------------------------------------------------------------

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

    @checker.checks("file", raises=FileNotFoundError)  # type: ignore[untyped-decorator]
    def _file_exists(value: object) -> bool:
        if not isinstance(value, str) or base_dir is None:
            return True
        path = resolve_path(value, base_dir)
        if not path.is_file():
            raise FileNotFoundError(str(path))
        return True

    @checker.checks("path")  # type: ignore[untyped-decorator]
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
    if "x-hint" in schema and kind in ("pattern", "enum"):  # the declaring part's own fix
        return f"{_show(inst)} is not allowed; {schema['x-hint']}"
    if kind == "type":
        wanted = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        names = " or ".join(TYPE_NAMES.get(str(t), str(t)) for t in wanted)
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
    return str(error.message)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- parameters declared once ----------------------------------------------------------------


class _OperationalMark:
    def __repr__(self) -> str:
        return "operational"


_OPERATIONAL = _OperationalMark()
_T = TypeVar("_T")

Operational = Annotated[_T, _OPERATIONAL]
Operational.__doc__ = """``Operational[float]``: the type of a parameter that does not decide the
records (a timeout, a retry count, a thread count), so it may change when a run is resumed
(``"x-operational": true`` in the schema). The value is still a ``float``."""


def param(
    default: Any = MISSING,
    *,
    description: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    pattern: str | None = None,
    min_length: int | None = None,
    format: str | None = None,
    secret: bool = False,
    schema: Mapping[str, Any] | None = None,
) -> Any:
    """Declare one parameter of a :class:`Params` class: its default, its description and its
    JSON Schema constraints (the type comes from the annotation).

    ``format="file"`` asks for an existing file, ``format="path"`` for a path that may not
    exist yet; both arrive absolute (relative paths start at the manifest's folder).
    ``secret=True`` marks a credential (``writeOnly`` in the schema): never written to a run.
    ``schema`` adds any other JSON Schema keywords. A list or mapping default is copied for
    each instance. A parameter that does not decide the records is typed
    :data:`Operational` (``timeout_s: Operational[float] = param(60)``).
    """
    extra: dict[str, Any] = {
        "minimum": minimum,
        "maximum": maximum,
        "exclusiveMinimum": exclusive_minimum,
        "pattern": pattern,
        "minLength": min_length,
        "format": format,
        "writeOnly": True if secret else None,
    }
    extra = {k: v for k, v in extra.items() if v is not None} | dict(schema or {})
    metadata = {"harness": {"description": description, "schema": extra}}
    if isinstance(default, list | dict):
        frozen = copy.deepcopy(default)
        factory = lambda: copy.deepcopy(frozen)  # noqa: E731
        return field(default_factory=factory, metadata=metadata, repr=not secret)
    return field(default=default, metadata=metadata, repr=not secret)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(param,))
class Params(Mapping[str, Any]):
    """A part's parameters, declared once as typed fields with :func:`param`.

    Subclasses become frozen dataclasses; :meth:`json_schema` derives the JSON Schema that
    validates manifests, documents the plugin and feeds editors. An instance reads as a
    mapping too (``params["n_ctx"]``), so code written for plain-dict parameters keeps
    working::

        class EchoParams(Params):
            prefix: str = param("", description="Put before every answer.")
            max_words: int = param(100, minimum=1, description="Cut answers to this length.")

        register("echo", EchoBackend, params=EchoParams)
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(frozen=True, kw_only=True)(cls)
        _check_declaration(cls)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """``{"properties": ..., "required": [...]}`` from the fields' types and declarations."""
        hints = get_type_hints(cls, include_extras=True)
        properties = {f.name: _field_schema(hints[f.name], f) for f in fields(cls)}  # type: ignore[arg-type]
        required = [f.name for f in fields(cls) if _required(f)]  # type: ignore[arg-type]
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        if required:
            schema["required"] = required
        return schema

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Params:
        """An instance from validated parameters (keys the class does not declare are left out)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    def preflight(self, base_dir: Path) -> list[str]:
        """Cheap checks ``harness validate`` (and ``run``, before anything starts) make beyond
        the schema: a model file that must exist, say. Return one line per problem,
        ``field: what is wrong (fix)``; read no large file, call no server. ``base_dir`` is
        the manifest's folder."""
        return []

    def capabilities(self) -> frozenset[str] | None:
        """A backend's: the ``capabilities`` the built backend will have, when known without
        building it (an engine choice, a flag), so validation can refuse a task the backend
        cannot serve before any model loads. None, the default, means not known: nothing is
        refused."""
        return None

    def requirements(self, base_dir: Path) -> dict[str, str]:
        """A task's: the backend capabilities it needs, each with why in a few words and the
        fix (``{"loglikelihood": "task x scores choices by log-likelihood; use ..."}``).
        Validation checks them against every backend's :meth:`capabilities`, exit 2."""
        return {}

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self))  # type: ignore[arg-type]


def _check_declaration(cls: type[Params]) -> None:
    """Refuse, when the class is defined, a type the schema cannot express or a default that
    its own declaration would reject: the plugin's author sees it, not a user's manifest."""
    hints = get_type_hints(cls, include_extras=True)
    for f in fields(cls):  # type: ignore[arg-type]
        where = f"{cls.__name__}.{f.name}"
        if hints[f.name] is not Any and not _type_schema(hints[f.name]):
            raise TypeError(
                f"{where}: type {hints[f.name]!r} has no JSON Schema; use bool, int, "
                "float, str, Path, Literal, list, dict or a union with None"
            )
        schema = _field_schema(hints[f.name], f)
        default = schema.pop("default", None)
        if default is not None and not Draft202012Validator(schema).is_valid(default):
            raise TypeError(f"{where}: the default {default!r} does not match {schema}")


def _required(f: Field[Any]) -> bool:
    return f.default is MISSING and f.default_factory is MISSING


def _field_schema(annotation: Any, f: Field[Any]) -> dict[str, Any]:
    meta = f.metadata.get("harness", {})
    schema = _type_schema(annotation) | dict(meta.get("schema", {}))
    if meta.get("description"):
        schema["description"] = meta["description"]
    if f.default is not MISSING and f.default is not None:
        schema["default"] = f.default
    elif f.default_factory is not MISSING:
        schema["default"] = f.default_factory()
    return schema


_SCALARS: dict[Any, str] = {bool: "boolean", int: "integer", float: "number", str: "string"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` that also accepts ``null``: a manifest may write ``limit: null`` for "unset"."""
    if "enum" in schema:
        schema = schema | {"enum": [*schema["enum"], None]}
    if isinstance(schema.get("type"), str):
        return schema | {"type": [schema["type"], "null"]}
    if "anyOf" in schema:
        return schema | {"anyOf": [*schema["anyOf"], {"type": "null"}]}
    return schema


def _type_schema(annotation: Any) -> dict[str, Any]:
    """JSON Schema of a type annotation: scalars, ``X | None``, ``Literal``, lists, mappings."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        marks = {"x-operational": True} if _OPERATIONAL in annotation.__metadata__ else {}
        return _type_schema(args[0]) | marks
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    if annotation is Path:
        return {"type": "string"}
    if origin is Literal:
        kinds = {_SCALARS.get(type(a)) for a in args}
        return (
            {"type": kinds.pop(), "enum": list(args)} if len(kinds) == 1 else {"enum": list(args)}
        )
    if origin in (Union, UnionType):
        options = [_type_schema(a) for a in args if a is not type(None)]
        schema = options[0] if len(options) == 1 else {"anyOf": options}
        return _nullable(schema) if type(None) in args else schema
    if origin in (list, tuple, Sequence) or annotation is list:
        items = _type_schema(args[0]) if args and args[0] is not Ellipsis else {}
        return {"type": "array", "items": items} if items else {"type": "array"}
    if origin in (dict, Mapping) or annotation is dict:
        return {"type": "object"}
    return {}
