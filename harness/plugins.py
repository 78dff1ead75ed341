"""Plugin discovery: the pluggy manager, entry points, and the catalogue they fill.

Every plugin, built-in or third-party, is found the same way: an entry point in the
``harness`` group whose value is a module (or object) implementing hooks from
:mod:`harness.hookspecs`.

Environment variables:

- ``HARNESS_DISABLE_PLUGINS=a,b``: block the named entry points.
- ``HARNESS_LOAD_PLUGINS=a,b``: load only the named entry points (empty: none at all).
- ``HARNESS_TRACE_PLUGINS=1``: print every hook call to stderr.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

import pluggy

from harness import hookspecs
from harness.errors import PluginError
from harness.registry import KINDS, Catalog, Component, Factory, UnknownPlugin

log = logging.getLogger(__name__)

GROUP = "harness"
#: kind -> the hook that registers parts of that kind
REGISTRATION_HOOKS = {kind: f"register_{kind}s" for kind in KINDS}


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin: its entry-point name and distribution."""

    name: str
    package: str
    version: str
    hooks: list[str] = field(default_factory=list)
    error: str | None = None


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [part.strip() for part in value.split(",") if part.strip()]


class PluginHost:
    """Owns the pluggy manager and the catalogue; a typed facade over the hooks."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._catalog: Catalog | None = None
        self.trace = bool(os.environ.get("HARNESS_TRACE_PLUGINS"))
        if self.trace:
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()

    # --- loading ----------------------------------------------------------------------------

    def load_entrypoints(self, group: str = GROUP, packages: set[str] | None = None) -> None:
        """Import and register every entry point of ``group``, honouring the env variables.

        A plugin that fails to import is recorded (``harness plugins`` shows it) and skipped,
        so one broken package does not stop runs that do not use it. ``packages`` restricts
        loading to those distributions (the docs generator uses only the built-ins).
        """
        allow = _env_list("HARNESS_LOAD_PLUGINS")
        for name in _env_list("HARNESS_DISABLE_PLUGINS") or []:
            self.pm.set_blocked(name)
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            if (allow is not None and ep.name not in allow) or self.pm.is_blocked(ep.name):
                continue
            if packages is not None and _distribution(ep)[0] not in packages:
                continue
            self._load_one(ep)
        self.pm.check_pending()

    def _load_one(self, ep: EntryPoint) -> None:
        package, version = _distribution(ep)
        if ep.name in self.plugins:
            other = self.plugins[ep.name].package
            raise PluginError(
                f"plugin name {ep.name!r} is claimed by package {other!r} and by package "
                f"{package!r}; uninstall one of them"
            )
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party package must not stop the others
            self.plugins[ep.name] = PluginInfo(ep.name, package, version, error=repr(exc))
            log.warning("plugin %r from package %r failed to load: %r", ep.name, package, exc)
            return
        self.register(plugin, ep.name, package, version)

    def register(self, plugin: Any, name: str, package: str = "", version: str = "") -> None:
        """Register a plugin object by hand (tests, notebooks, one-off scripts)."""
        self.pm.register(plugin, name=name)
        hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
        self.plugins[name] = PluginInfo(name, package or name, version, hooks)
        self._catalog = None

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._catalog = None

    # --- the catalogue ----------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """Every backend, task and metric, collected once from the ``register_*`` hooks."""
        if self._catalog is None:
            catalog = Catalog()
            for kind in KINDS:
                self._collect(kind, catalog)
            self._catalog = catalog
        return self._catalog

    def _collect(self, kind: str, catalog: Catalog) -> None:
        caller = getattr(self.pm.hook, REGISTRATION_HOOKS[kind])
        for impl in caller.get_hookimpls():  # registration order (calls would be LIFO)
            info = self.plugins.get(impl.plugin_name, PluginInfo(impl.plugin_name, "", ""))
            if self.trace:
                print(f"harness: {caller.name} -> plugin {info.name!r}", file=sys.stderr)
            impl.function(register=_register_callback(kind, info, catalog))

    def component(self, kind: str, name: str) -> Component:
        """Look a part up; the error names near misses and plugins that failed to load."""
        try:
            return self.catalog.get(kind, name)
        except UnknownPlugin as exc:
            broken = [p for p in self.plugins.values() if p.error]
            if broken:
                notes = "; ".join(
                    f"{p.name} ({p.package}) failed to load: {p.error}" for p in broken
                )
                exc.args = (f"{exc.args[0]}; note: {notes}",)
            raise

    # --- lifecycle hooks (typed facade) -----------------------------------------------------

    def run_start(self, run: Any) -> None:
        self.pm.hook.on_run_start(run=run)

    def sample_finished(self, run: Any, record: dict[str, Any]) -> None:
        self.pm.hook.on_sample_finished(run=run, record=record)

    def run_end(self, run: Any, results: dict[str, Any] | None, status: str) -> None:
        self.pm.hook.on_run_end(run=run, results=results, status=status)

    def has_sample_hooks(self) -> bool:
        return bool(self.pm.hook.on_sample_finished.get_hookimpls())

    def add_commands(self, cli: Any) -> None:
        self.pm.hook.register_commands(cli=cli)


def _register_callback(kind: str, info: PluginInfo, catalog: Catalog) -> Callable[..., None]:
    def register(
        name: str,
        factory: Factory,
        *,
        schema: dict[str, Any] | None = None,
        description: str = "",
        **metadata: Any,
    ) -> None:
        if not isinstance(factory, str) and not callable(factory):
            raise PluginError(f"plugin {info.name!r}: factory for {kind} {name!r} is not callable")
        doc = description or (schema or {}).get("description", "") or _first_line(factory)
        component = Component(
            name, kind, factory, schema or {}, doc, info.name, info.package, info.version, metadata
        )
        catalog.add(component)

    return register


def _first_line(factory: Factory) -> str:
    if isinstance(factory, str):
        return ""
    return (inspect.getdoc(factory) or "").split("\n", 1)[0]


def _distribution(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ep.value.split(":")[0].split(".")[0], ""
    return dist.metadata["Name"], dist.version


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide host with every entry-point plugin loaded (built once)."""
    global _HOST
    if _HOST is None:
        host = PluginHost()
        host.load_entrypoints()
        _HOST = host
    return _HOST


def reset_host(host: PluginHost | None = None) -> None:
    """Replace the process-wide host (tests use this to start from a clean slate)."""
    global _HOST
    _HOST = host


def iter_plugin_rows(host: PluginHost) -> Iterable[dict[str, Any]]:
    """Rows for ``harness plugins``: one per contributed part, plus hook-only and broken plugins."""
    contributed = set()
    for component in host.catalog:
        contributed.add(component.plugin)
        yield component.describe()
    for info in host.plugins.values():
        if info.name in contributed:
            continue
        kind = "broken" if info.error else "hooks"
        yield {
            "name": info.name,
            "kind": kind,
            "package": info.package,
            "version": info.version,
            "plugin": info.name,
            "description": info.error or ", ".join(info.hooks),
        }
