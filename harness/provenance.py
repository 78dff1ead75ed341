"""Provenance: which code, which plugins, which data and which seeds produced a run."""

from __future__ import annotations

import hashlib
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from harness.manifest import Entry, Manifest
from harness.plugins import PluginHost


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
    entries = [{"path": str(p), "sha256": file_sha256(p), "bytes": p.stat().st_size} for p in files]
    combined = hashlib.sha256("".join(e["sha256"] for e in entries).encode()).hexdigest()
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
