"""Loading a run manifest: parse, apply ``--set`` overrides, expand ``${ENV}``, validate, resolve.

Every problem becomes one line ``FILE: path.to.field: what is wrong (and how to fix it)``;
all problems are collected before anything is reported, so a user fixes them in one pass.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import os
import re
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from harness._errors import ManifestError
from harness._inputs import TOO_LONG
from harness._plugins import PluginHost
from harness._plugins import UnknownPlugin
from harness._plugins import using
from harness._schema import MANIFEST_KINDS
from harness._schema import SECTIONS
from harness._schema import Params
from harness._schema import core_schema
from harness._schema import resolve_params
from harness._schema import schema_problems

log = logging.getLogger("harness")
MAX_VALUES = 1_000_000
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Entry:
    """One backend, task or metric of a manifest, resolved.

    ``params`` are what the plugin receives (``${ENV}`` expanded, paths absolute) and must
    never be written to disk; ``raw`` is the entry as written, safe to record.
    """

    kind: str
    id: str
    type: str
    params: dict[str, Any]
    raw: dict[str, Any]


@dataclass(frozen=True)
class RayOptions:
    """``run.ray``: where the Ray cluster is and what one worker actor asks of it. Operational,
    like ``concurrency``: none of it decides a record, so a resume may change it."""

    address: str | None = None  # None: a local Ray for this run; "auto", "ray://h:p", "h:p"
    num_cpus: float = 1
    num_gpus: float = 0
    memory_mb: int | None = None
    workers: int | None = None  # actors per backend; None: the cluster's CPUs / num_cpus


@dataclass(frozen=True)
class RunOptions:
    out: str | None = None
    seed: int | None = None
    concurrency: int | None = None
    limit: int | None = None
    flush_every: int = 64
    repeats: int = 1  # plays of each sample; above 1 records carry ``repeat`` and ``seed``
    executor: str = "local"  # or "ray": work units on Ray actors (docs/distributed.md)
    ray: RayOptions = field(default_factory=RayOptions)

    @classmethod
    def from_mapping(cls, run: dict[str, Any]) -> RunOptions:
        """The validated ``run`` section, its ``ray`` mapping made a :class:`RayOptions`."""
        return cls(**{**run, "ray": RayOptions(**(run.get("ray") or {}))})


@dataclass(frozen=True)
class Manifest:
    """A validated manifest: what to run, and the record of it that is safe to store."""

    path: Path
    name: str
    backends: tuple[Entry, ...]
    tasks: tuple[Entry, ...]
    metrics: tuple[Entry, ...]
    run: RunOptions
    raw: dict[str, Any]
    env_values: tuple[str, ...] = field(default=(), repr=False)

    @property
    def sha256(self) -> str:
        """Hash of the manifest as written (after overrides): identifies a run's plan."""
        text = json.dumps(self.raw, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def entries(self, kind: str) -> tuple[Entry, ...]:
        return {"backend": self.backends, "task": self.tasks, "metric": self.metrics}[kind]


# --- parsing --------------------------------------------------------------------------------


def read_document(path: Path) -> Any:
    """Parse YAML or JSON (JSON is YAML); errors name the file and the line."""
    label = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError([f"{label}: file not found (check the path)"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError([f"{label}: cannot read the file: {exc}"]) from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ManifestError([f"{label}: {where}: malformed YAML/JSON: {problem}"]) from None
    except RecursionError:
        raise ManifestError([f"{label}: nested too deeply to read; write it out flatter"]) from None
    except ValueError:  # an integer of more than 4,300 digits
        raise ManifestError([f"{label}: {TOO_LONG}"]) from None
    if _expanded_size(document, {}) > MAX_VALUES:
        raise ManifestError(
            [
                f"{label}: (top level): expands to more than {MAX_VALUES:,} values (YAML anchors "
                "and aliases nested in each other?); write the manifest out plainly"
            ]
        )
    return document


def _expanded_size(node: Any, seen: dict[int, int]) -> int:
    """How many values the document holds once its YAML aliases are expanded, counted over
    the shared objects (memoised), so an alias bomb is measured without being expanded."""
    if not isinstance(node, dict | list):
        return 1
    if id(node) not in seen:
        seen[id(node)] = 0  # a cycle counts once
        children = node.values() if isinstance(node, dict) else node
        seen[id(node)] = 1 + sum(_expanded_size(child, seen) for child in children)
    return seen[id(node)]


# --- --set overrides ------------------------------------------------------------------------

_KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_key(key: str) -> list[str | int]:
    """``tasks[0].limit`` or ``tasks.0.limit`` -> ``["tasks", 0, "limit"]``."""
    parts: list[str | int] = []
    pos = 0
    for match in _KEY_PART.finditer(key):
        between = key[pos : match.start()]
        if between not in ("", "."):
            raise ValueError(f"cannot parse {key!r}")
        name, index = match.groups()
        parts.append(int(index) if index is not None else (int(name) if name.isdigit() else name))
        pos = match.end()
    if not parts or key[pos:]:
        raise ValueError(f"cannot parse {key!r}")
    return parts


def apply_overrides(data: dict[str, Any], sets: Sequence[str], label: str) -> dict[str, Any]:
    """Apply ``--set KEY=VALUE`` (VALUE parsed as YAML) to a copy of the manifest."""
    data = copy.deepcopy(data)
    problems = []
    for item in sets:
        try:
            _apply_one(data, item)
        except ValueError as exc:
            shown = item if len(item) <= 80 else item[:77] + "..."
            reason = TOO_LONG if "digits" in str(exc) else exc
            problems.append(f"{label}: --set {shown}: {reason}")
    if problems:
        raise ManifestError(problems)
    return data


def _apply_one(data: dict[str, Any], item: str) -> None:
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ValueError("expected KEY=VALUE, for example --set run.limit=10 or tasks[0].limit=5")
    parts = parse_key(key.strip())
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        value = text
    node: Any = data
    for part, following in pairwise(parts):
        node = _step(node, part, following, key)
    _assign(node, parts[-1], value, key)


def _step(node: Any, part: str | int, following: str | int, key: str) -> Any:
    if isinstance(part, int):
        if not isinstance(node, list) or part >= len(node):
            raise ValueError(f"{key}: there is no item {part} here (lists count from 0)")
        return node[part]
    if not isinstance(node, dict):
        raise ValueError(f"{key}: {part!r} is inside something that is not a mapping")
    return node.setdefault(part, [] if isinstance(following, int) else {})


def _assign(node: Any, part: str | int, value: Any, key: str) -> None:
    if isinstance(part, int):
        if not isinstance(node, list) or part > len(node):
            raise ValueError(f"{key}: there is no item {part} here (lists count from 0)")
        node.append(value) if part == len(node) else node.__setitem__(part, value)
    elif isinstance(node, dict):
        node[part] = value
    else:
        raise ValueError(f"{key}: cannot set {part!r} inside a value that is not a mapping")


# --- ${ENV} ---------------------------------------------------------------------------------


def expand_env(node: Any, path: str = "") -> tuple[Any, list[str], list[str]]:
    """Replace ``${NAME}`` in strings. Returns (expanded, missing problems, values used)."""
    if isinstance(node, str):
        missing, used = [], []

        def sub(match: re.Match[str]) -> str:
            value = os.environ.get(match.group(1))
            if value is None:
                missing.append(
                    f"{path}: environment variable {match.group(1)} is not set "
                    f"(export {match.group(1)}=... before running)"
                )
                return match.group(0)
            used.append(value)
            return value

        return ENV_REF.sub(sub, node), missing, used
    if isinstance(node, dict):
        items = [(k, expand_env(v, _join(path, k))) for k, v in node.items()]
        return (
            {k: r[0] for k, r in items},
            _cat(r[1] for _, r in items),
            _cat(r[2] for _, r in items),
        )
    if isinstance(node, list):
        results = [expand_env(v, f"{path}[{i}]") for i, v in enumerate(node)]
        return [r[0] for r in results], _cat(r[1] for r in results), _cat(r[2] for r in results)
    return node, [], []


def _cat(lists: Iterable[list[str]]) -> list[str]:
    return [x for sub in lists for x in sub]


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


# --- validation -----------------------------------------------------------------------------


def load_manifest(
    path: str | Path,
    host: PluginHost | None = None,
    sets: Sequence[str] = (),
    limit: int | None = None,
) -> Manifest:
    """Read, override (``sets``: ``KEY=VALUE`` as ``--set`` takes them), expand and validate a
    manifest against the core schema and each plugin's parameters.

    Raises :class:`ManifestError` listing every problem (one line each, ``FILE: field: what is
    wrong (fix)``), or returns the resolved :class:`Manifest`. ``host`` defaults to the
    process-wide :class:`PluginHost` with every installed plugin.
    """
    host = host or PluginHost.current()
    path = Path(path)
    label = str(path)
    raw = read_document(path)
    if not isinstance(raw, dict):
        kind = "empty" if raw is None else f"a {type(raw).__name__}"
        raise ManifestError(
            [
                f"{label}: (top level): the manifest is {kind}; expected a mapping "
                "with name, backends and tasks"
            ]
        )
    raw = apply_overrides(raw, sets, label)
    if limit is not None:
        raw.setdefault("run", {})
        if isinstance(raw["run"], dict):
            raw["run"]["limit"] = limit
    expanded, problems, used = expand_env(raw)
    problems += schema_problems(expanded, core_schema(), "")
    base_dir = path.resolve().parent
    entries = {}
    with using(host):  # plugins' own checks build nested parts with this host
        for kind in MANIFEST_KINDS:
            found, entry_problems = _check_entries(kind, expanded, raw, host, base_dir)
            entries[kind] = found
            problems += entry_problems
        if not problems:
            problems += capability_problems(entries["backend"], entries["task"], host, base_dir)
    problems += executor_problems(expanded.get("run"))
    if problems:
        raise ManifestError([f"{label}: {p}" for p in problems])
    run = RunOptions.from_mapping(expanded.get("run", {}))
    return Manifest(
        path,
        expanded["name"],
        entries["backend"],
        entries["task"],
        entries["metric"],
        run,
        raw,
        tuple(v for v in used if v),
    )


def _check_entries(
    kind: str, expanded: dict[str, Any], raw: dict[str, Any], host: PluginHost, base_dir: Path
) -> tuple[tuple[Entry, ...], list[str]]:
    section = SECTIONS[kind]
    problems: list[str] = []
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    items = expanded.get(section)
    for index, item in enumerate(items if isinstance(items, list) else []):
        where = f"{section}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            continue  # the core schema already reported it
        try:
            component = host.component(kind, item["type"])
        except UnknownPlugin as exc:
            problems.append(f"{where}.type: {exc}")
            continue
        params, found = resolve_params(component, item, where, base_dir)
        problems += found
        entry_id = str(item.get("id", item["type"]))
        if entry_id in seen:
            problems.append(
                f"{where}.id: {entry_id!r} is used by {section}[{seen[entry_id]}] too; "
                "give each entry a distinct id"
            )
        seen[entry_id] = index
        if not found:
            written = _redact_secrets(raw[section][index], component.schema, where)
            raw[section][index] = written
            entries.append(Entry(kind, entry_id, item["type"], params, written))
    return tuple(entries), problems


def capability_problems(
    backends: Sequence[Entry], tasks: Sequence[Entry], host: PluginHost, base_dir: Path
) -> list[str]:
    """One line per (task, backend) pair where the task needs a capability the backend's
    parameters say it will not have (``Params.requirements`` against ``Params.capabilities``)."""
    offers = {e.id: _params(host, e).capabilities() for e in backends}
    problems = []
    for index, task in enumerate(tasks):
        needs = _params(host, task).requirements(base_dir)
        for backend in backends:
            has = offers[backend.id]
            for capability in [] if has is None else sorted(set(needs) - has):
                problems.append(
                    f"tasks[{index}] ({task.id}): backend {backend.id!r} ({backend.type}) has no "
                    f"{capability!r} capability, which {needs[capability]}"
                )
    return problems


def executor_problems(run: Any) -> list[str]:
    """``run.executor: ray`` without Ray installed, found while validating (exit 2), not
    when the first sample is due; ``find_spec`` looks without importing Ray."""
    if not isinstance(run, dict) or run.get("executor") != "ray":
        return []
    if importlib.util.find_spec("ray") is not None:
        return []
    return [
        "run.executor: 'ray' needs Ray, which is not installed; pip install -e .[ray] "
        "(or set run.executor: local)"
    ]


def _params(host: PluginHost, entry: Entry) -> Any:
    params_class = host.component(entry.kind, entry.type).params_class
    return params_class.from_mapping(entry.params) if params_class else Params()


def _redact_secrets(item: dict[str, Any], schema: dict[str, Any], where: str) -> dict[str, Any]:
    """The entry as it may be written down: a parameter its plugin declares secret
    (``writeOnly``) keeps an ``${ENV}`` reference as written, and a literal value becomes
    ``***`` with a warning, so a key never reaches ``manifest.json`` or ``results.json``."""
    out = dict(item)
    for key, prop in (schema.get("properties") or {}).items():
        value = out.get(key)
        if not prop.get("writeOnly") or value is None:
            continue
        if isinstance(value, str) and ENV_REF.fullmatch(value.strip()):
            continue
        out[key] = "***"
        log.warning(
            "%s.%s: a secret written literally; write ${SOME_ENV} instead so it stays out "
            "of the manifest file (it is never written to the run directory)",
            where,
            key,
        )
    return out
