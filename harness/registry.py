"""The catalogue of named parts (backends, tasks, metrics) that plugins registered.

Registration is lazy: a part is a name, a JSON Schema for its parameters and a factory that
may be a ``"module:attribute"`` string, imported only when a manifest uses the part.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from harness.errors import HarnessError, PluginError

KINDS = ("backend", "task", "metric", "decoder")
MANIFEST_KINDS = ("backend", "task", "metric")  # the kinds a manifest lists as entries

Factory = Callable[..., Any] | str


class Register(Protocol):
    """The callback that ``register_*`` hooks receive."""

    def __call__(
        self,
        name: str,
        factory: Factory,
        *,
        schema: dict[str, Any] | None = None,
        description: str = "",
        **metadata: Any,
    ) -> None: ...


@dataclass
class Component:
    """One registered part and where it came from."""

    name: str
    kind: str
    factory: Factory
    schema: dict[str, Any]
    description: str
    plugin: str
    package: str
    version: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Callable[..., Any]:
        """Import the factory if it was given as ``"module:attribute"``."""
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.kind} {self.name!r} from package {self.package!r} could not be loaded "
                f"({self.factory}): {exc}"
            ) from exc
        self.factory = obj
        return obj

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "package": self.package,
            "version": self.version,
            "plugin": self.plugin,
            "description": self.description,
        }


class Catalog:
    """Every registered part, by kind and name. A name claimed twice is an error."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[str, Component]] = {kind: {} for kind in KINDS}

    def add(self, component: Component) -> None:
        existing = self._parts[component.kind].get(component.name)
        if existing is not None:
            raise PluginError(
                f"{component.kind} name {component.name!r} is registered twice: by package "
                f"{existing.package!r} (plugin {existing.plugin!r}) and by package "
                f"{component.package!r} (plugin {component.plugin!r}); uninstall one, or block "
                "one with HARNESS_DISABLE_PLUGINS=<plugin>"
            )
        self._parts[component.kind][component.name] = component

    def get(self, kind: str, name: str) -> Component:
        try:
            return self._parts[kind][name]
        except KeyError:
            raise UnknownPlugin(kind, name, self.names(kind)) from None

    def names(self, kind: str) -> list[str]:
        return sorted(self._parts[kind])

    def __iter__(self) -> Iterator[Component]:
        for kind in KINDS:
            yield from (self._parts[kind][n] for n in sorted(self._parts[kind]))


class UnknownPlugin(HarnessError):
    """A manifest named a part nobody registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(unknown_message(kind, name, known))


def unknown_message(kind: str, name: str, known: list[str]) -> str:
    """``unknown backend 'repaly'; did you mean 'replay'?`` with the list of known names."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    listing = ", ".join(known) or "none installed"
    return f"unknown {kind} {name!r}; {hint}known {kind}s: {listing} (see `harness plugins`)"
