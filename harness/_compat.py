"""The module names of harness 0.1 (``harness.runner``, ``harness.plugins``, ...), kept for
one release: importing one works and warns (``DeprecationWarning``) with the public name to use.

Each old name is an alias of the private module that now holds its code; a name that moved
to :class:`~harness.BuildContext` (``build``, ``load_decoder``) or became a method
(``decode_outcome``) has a small adapter here.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: old module -> the private modules that now hold its names, searched in order
MOVED: dict[str, tuple[str, ...]] = {
    "harness.compare": ("harness._report",),
    "harness.decoding": ("harness._parts", "harness._compat"),
    "harness.errors": ("harness._errors",),
    "harness.execute": ("harness._play", "harness._compat"),
    "harness.hookspecs": ("harness._hookspecs",),
    "harness.interfaces": ("harness._parts",),
    "harness.manifest": ("harness._manifest",),
    "harness.plugins": ("harness._plugins",),
    "harness.progress": ("harness._play",),
    "harness.provenance": ("harness._experiment",),
    "harness.records": ("harness._records",),
    "harness.registry": ("harness._plugins", "harness._schema"),
    "harness.report": ("harness._report",),
    "harness.results": ("harness._results",),
    "harness.runner": ("harness._run",),
    "harness.schema": ("harness._schema",),
    "harness.schemadoc": ("harness._docgen",),
    "harness.store": ("harness._store",),
    "harness.validation": ("harness._schema",),
    "harness.cli": ("harness._cli",),
}


class _DeprecatedModule(types.ModuleType):
    """Looks names up in the new modules on first use."""

    def __init__(self, name: str, targets: tuple[str, ...]) -> None:
        super().__init__(name, f"Deprecated alias of {', '.join(targets)}.")
        self._targets = targets

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        for target in self._targets:
            module = importlib.import_module(target)
            if hasattr(module, attr):
                return getattr(module, attr)
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")


class _Finder:
    """A meta-path finder and loader (duck-typed: ``importlib.abc`` costs 10 ms to import)."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)  # type: ignore[arg-type]

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        warnings.warn(
            f"{spec.name} is private since harness 0.2 and goes away in 0.3; import public "
            "names from `harness` (see docs/api.md)",
            DeprecationWarning,
            stacklevel=2,
        )
        targets = MOVED[spec.name]
        if len(targets) == 1:  # the very module, so that introspection sees every name
            return importlib.import_module(targets[0])
        return _DeprecatedModule(spec.name, targets)

    def exec_module(self, module: types.ModuleType) -> None:
        return None


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())


# --- adapters for names that changed shape -----------------------------------------------------


def build(host: Any, entry: Any, base_dir: Path, seed: int | None) -> Any:
    """0.1's ``harness.execute.build``: use ``context.build(kind, spec)`` instead."""
    from harness._parts import Builder

    return Builder(host, base_dir, seed).build_entry(entry)


def load_decoder(name: str, params: dict[str, Any] | None = None) -> Any:
    """0.1's ``harness.decoding.load_decoder``: use ``context.build("decoder", name)``."""
    from harness._parts import Builder

    return Builder().build("decoder", {"type": name, **(params or {})}, where="decoder")


def decode_outcome(decoder: Any, response: Any, fields: dict[str, Any]) -> Any:
    """0.1's ``harness.decoding.decode_outcome``: use ``decoder.outcome(response, fields)``."""
    from harness._parts import Decoder

    return Decoder.outcome(decoder, response, fields)
