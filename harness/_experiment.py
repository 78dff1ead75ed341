"""Provenance (which code, plugins, data and platform produced a run) and what a resume must
not change: the experiment a run directory holds.

Records are comparable only when they come from one experiment: the same backends, tasks and
metrics with the same resolved parameters (after ``${ENV}`` and defaults), the same plugin
versions, data files, model files and seed. Operational parameters (timeouts, retries,
concurrency: typed ``Operational[...]``, ``"x-operational": true`` in a JSON Schema) may change
between resumes, which is how one recovers from an outage; each change is recorded.

Only digests of parameter values are stored, never the values: an ``${ENV}`` value (a model
name, an endpoint) must not reach the run directory, and a secret is left out altogether.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

from harness._errors import RunDirError

if TYPE_CHECKING:
    from harness._manifest import Entry
    from harness._manifest import Manifest
    from harness._plugins import PluginHost

OPERATIONAL = "x-operational"
SECTIONS = {"backend": "backends", "task": "tasks", "metric": "metrics"}


def fingerprint(manifest: Manifest, host: PluginHost) -> dict[str, Any]:
    """The parts of the experiment known before anything is built: entries, versions, seed."""
    entries = {}
    for entry in (*manifest.backends, *manifest.tasks, *manifest.metrics):
        component = host.component(entry.kind, entry.type)
        props = component.schema.get("properties", {})
        entries[_label(entry)] = {
            "version": f"{component.package} {component.version}",
            "params": {
                key: _digest(value)
                for key, value in sorted(entry.params.items())
                if _decisive(props.get(key, {}))
            },
        }
    return {"seed": manifest.run.seed, "entries": entries}


RUNTIME_KEYS = ("runtime", "runtime_version")


def files(doc: dict[str, Any]) -> dict[str, Any]:
    """The data and model files, from the provenance a run records: each task's combined data
    hash, and every ``*sha256*`` value a backend's ``info()`` reports with the ``runtime`` and
    ``runtime_version`` that ran it (another engine is another experiment)."""
    data = {task: info.get("sha256") for task, info in doc.get("data", {}).items()}
    models = {
        backend: {k: v for k, v in info.items() if "sha256" in k or k in RUNTIME_KEYS}
        for backend, info in doc.get("backends", {}).items()
    }
    return {"data": data, "models": models}


def check(run_dir: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse to resume into ``run_dir`` when the experiment differs; say exactly what changed."""
    changes = _differences(old, new)
    if changes:
        raise RunDirError(
            f"{run_dir}: holds a run of a different experiment ({'; '.join(changes)}); pass "
            "--out with a new directory, or delete this one to start over"
        )


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    if old.get("seed") != new.get("seed"):
        out.append(f"run.seed: {old.get('seed')!r} -> {new.get('seed')!r}")
    for label in sorted({*old.get("entries", {}), *new.get("entries", {})}):
        out += _entry_differences(label, old["entries"].get(label), new["entries"].get(label))
    for kind in ("data", "models"):
        was, now = old.get(kind, {}), new.get(kind, {})
        out += [f"{kind} of {name!r} changed" for name in sorted(was) if was[name] != now.get(name)]
    return out


def _entry_differences(
    label: str, was: dict[str, Any] | None, now: dict[str, Any] | None
) -> list[str]:
    if was is None or now is None:
        return [f"{label}: {'added' if was is None else 'removed'}"]
    out = []
    if was["version"] != now["version"]:
        out.append(f"{label}: plugin {was['version']} -> {now['version']}")
    for key in sorted({*was["params"], *now["params"]}):
        if was["params"].get(key) != now["params"].get(key):
            out.append(f"{label}.{key} changed")
    return out


def operational_changes(
    old_raw: dict[str, Any], manifest: Manifest, host: PluginHost
) -> list[dict[str, Any]]:
    """Operational parameters changed since the run directory's last part, as written (an
    ``${ENV}`` reference stays a reference)."""
    changes = []
    for entry in (*manifest.backends, *manifest.tasks, *manifest.metrics):
        before = _raw_entry(old_raw, entry)
        props = host.component(entry.kind, entry.type).schema.get("properties", {})
        for key, prop in sorted(props.items()):
            if prop.get(OPERATIONAL) and before.get(key) != entry.raw.get(key):
                field = f"{_label(entry)}.{key}"
                changes.append({"field": field, "was": before.get(key), "now": entry.raw.get(key)})
    return changes


def _raw_entry(raw: dict[str, Any], entry: Entry) -> dict[str, Any]:
    for item in raw.get(SECTIONS[entry.kind]) or []:
        if isinstance(item, dict) and str(item.get("id", item.get("type"))) == entry.id:
            return item
    return {}


def _label(entry: Entry) -> str:
    return f"{SECTIONS[entry.kind]}[{entry.id}] ({entry.type})"


def _decisive(prop: dict[str, Any]) -> bool:
    """Whether a parameter decides the records: not operational, not a secret, not a path
    (a file's content is hashed, not where it lies)."""
    return not prop.get(OPERATIONAL) and not prop.get("writeOnly") and "format" not in prop


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


# --- provenance: which code, plugins, data and platform produced a run ----------------------


def harness_version() -> str:
    try:
        return version("harness")
    except PackageNotFoundError:
        return "0+unknown"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_fingerprint(files: list[Path]) -> dict[str, Any]:
    """Each data file's sha256 and size, plus one combined hash for the task's data."""
    hashes = [file_sha256(p) for p in files]
    entries = [
        {"path": str(p), "sha256": h, "bytes": p.stat().st_size}
        for p, h in zip(files, hashes, strict=True)
    ]
    combined = hashlib.sha256("".join(hashes).encode()).hexdigest()
    return {"sha256": combined, "files": entries}


def plugin_versions(host: PluginHost, manifest: Manifest, extra: list[Entry]) -> dict[str, Any]:
    """``"kind:name" -> {package, version, plugin}`` for every part the run uses."""
    out = {}
    for entry in [*manifest.backends, *manifest.tasks, *manifest.metrics, *extra]:
        component = host.component(entry.kind, entry.type)
        out[f"{entry.kind}:{entry.type}"] = {
            "package": component.package,
            "version": component.version,
            "plugin": component.plugin,
        }
    return dict(sorted(out.items()))


def environment() -> dict[str, Any]:
    return {
        "harness": harness_version(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
    }
