"""Plugin discovery and the catalogue of parts: the pluggy manager, entry points, the
``register`` callback that registration hooks receive, and a typed facade over the hooks.

Every plugin, built-in or third-party, is found the same way: an entry point in the
``harness`` group whose value is a module (or object) implementing hooks from
:mod:`harness._hookspecs`. Registration is lazy: a part is a name, a parameter declaration and
a factory that may be a ``"module:attribute"`` string, imported only when a manifest uses it.

Environment variables:

- ``HARNESS_DISABLE_PLUGINS=a,b``: block the named entry points.
- ``HARNESS_LOAD_PLUGINS=a,b``: load only the named entry points (empty: none at all).
- ``HARNESS_TRACE_PLUGINS=1``: print every hook call to stderr.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from importlib.metadata import EntryPoint
from importlib.metadata import entry_points
from typing import Any

import pluggy

from harness import _hookspecs
from harness._errors import HarnessError
from harness._errors import PluginError
from harness._schema import KINDS
from harness._schema import Params

log = logging.getLogger("harness")

Factory = Callable[..., Any] | str


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
    params_class: type[Params] | None = None

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
        if not callable(obj):
            raise PluginError(f"{self.kind} {self.name!r}: {self.factory} is not callable")
        self.factory = obj
        return obj  # type: ignore[no-any-return]

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
        self.pm = pluggy.PluginManager(_hookspecs.PROJECT)
        self.pm.add_hookspecs(_hookspecs)
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
            impl.function(register=Register(kind, info, catalog))

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

    def notify(self, hook: str, **kwargs: Any) -> list[str]:
        """Call every implementation of a lifecycle hook, each on its own: one that raises is
        logged and listed in the return value, and the others still run (a logger's bug must
        not stop an evaluation). Implementations receive only the arguments they name."""
        failures = []
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception as exc:
                message = f"plugin {impl.plugin_name!r}: {hook} failed: {type(exc).__name__}: {exc}"
                log.warning("%s", message)
                failures.append(message)
        return failures

    def has_impls(self, hook: str) -> bool:
        return bool(getattr(self.pm.hook, hook).get_hookimpls())

    def report_sections(self, view: Any) -> tuple[list[Any], list[str]]:
        """Sections every plugin adds to ``report.html``, and the failures (a plugin whose hook
        raises loses its section, not the report)."""
        sections: list[Any] = []
        failures = []
        for impl in reversed(self.pm.hook.report_sections.get_hookimpls()):
            try:
                found: Any = impl.function(run=view)
                sections += list(found or [])
            except Exception as exc:
                failures.append(f"plugin {impl.plugin_name!r}: {type(exc).__name__}: {exc}")
        return sorted(sections, key=lambda s: (s.order, s.title)), failures

    def add_commands(self, cli: Any) -> None:
        self.pm.hook.register_commands(cli=cli)

    # --- the process-wide host --------------------------------------------------------------

    @classmethod
    def current(cls) -> PluginHost:
        """The process-wide host, with every installed entry-point plugin loaded (built on
        first use; ``harness.testing`` swaps it for a test's own)."""
        return get_host()


class Register:
    """The ``register`` callback that ``register_*`` hooks receive: one per kind and plugin."""

    def __init__(self, kind: str, info: PluginInfo, catalog: Catalog) -> None:
        self.kind, self.info, self.catalog = kind, info, catalog

    def __call__(
        self,
        name: str,
        factory: Factory,
        *,
        params: type[Params] | None = None,
        schema: dict[str, Any] | None = None,
        description: str = "",
        **metadata: Any,
    ) -> None:
        """Register one part. ``factory`` is a callable or a lazy ``"module:attribute"``
        string, called as ``factory(params, context)``. Declare the parameters with a
        :class:`~harness.Params` class (``params=``; the factory then receives an instance of
        it), or, as before, with a JSON Schema (``schema=``; the factory receives a dict).
        ``description`` defaults to the schema's, else the first paragraph of the ``params``
        class's docstring, else the factory's first docstring line."""
        where = f"plugin {self.info.name!r}: {self.kind} {name!r}"
        if not isinstance(factory, str) and not callable(factory):
            raise PluginError(f"{where}: the factory is not callable")
        if params is not None and schema is not None:
            raise PluginError(f"{where}: give params= or schema=, not both")
        if params is not None:
            schema = params.json_schema()
        doc = description or (schema or {}).get("description", "") or _first_line(params or factory)
        info = self.info
        component = Component(
            name,
            self.kind,
            factory,
            schema or {},
            doc,
            info.name,
            info.package,
            info.version,
            metadata,
            params,
        )
        self.catalog.add(component)


def _first_line(source: Factory | type[Params]) -> str:
    """The first paragraph of a docstring, on one line ("" for a lazy factory string)."""
    if isinstance(source, str):
        return ""
    return " ".join((inspect.getdoc(source) or "").split("\n\n", 1)[0].split())


def _distribution(ep: EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ep.value.split(":")[0].split(".")[0], ""
    return _name_version(dist)


@functools.lru_cache(maxsize=256)
def _name_version(dist: Any) -> tuple[str, str]:
    """A distribution's name and version, its METADATA parsed once (ten plugins of one
    package used to parse it twenty times)."""
    metadata = dist.metadata
    return metadata["Name"], metadata["Version"]


_HOST: PluginHost | None = None


def get_host() -> PluginHost:
    """The process-wide host with every entry-point plugin loaded (built once)."""
    global _HOST
    if _HOST is None:
        host = PluginHost()
        host.load_entrypoints()
        _HOST = host
    return _HOST


@contextmanager
def using(host: PluginHost) -> Iterator[PluginHost]:
    """Make ``host`` the process-wide one while validating with it, so a plugin's checks that
    build nested parts (``Params.preflight``) see the same plugins; restored afterwards."""
    global _HOST
    previous, _HOST = _HOST, host
    try:
        yield host
    finally:
        _HOST = previous


def reset_host(host: PluginHost | None = None) -> None:
    """Replace the process-wide host (tests use this to start from a clean slate)."""
    global _HOST
    _HOST = host


def iter_plugin_rows(host: PluginHost) -> Iterable[dict[str, Any]]:
    """Rows for ``harness plugins``: one per contributed part, then one ``hooks`` row per plugin
    that implements other hooks (lifecycle, report, commands), and one per broken plugin."""
    yield from (component.describe() for component in host.catalog)
    registration = set(REGISTRATION_HOOKS.values())
    for info in host.plugins.values():
        other = [h for h in info.hooks if h not in registration]
        if not info.error and not other:
            continue
        yield {
            "name": info.name,
            "kind": "broken" if info.error else "hooks",
            "package": info.package,
            "version": info.version,
            "plugin": info.name,
            "description": info.error or ", ".join(other),
        }
