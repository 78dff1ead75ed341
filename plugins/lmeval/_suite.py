"""lm-eval's task index and loader, as the ``lmeval`` task and ``HarnessLM`` users share them.

Two things lm-eval leaves to the caller are settled here once:

- a task's relative ``dataset_kwargs.data_files`` are read against the folder of the YAML
  file that names them (lm-eval reads them against the working directory, so a suite works
  only when run from its own folder); a path that exists there is made absolute, any other
  is left for lm-eval to resolve as it always does;
- a name lm-eval cannot find gets lm-eval's reason: its index skips a YAML file it cannot
  parse without a word, so an unknown name is explained by parsing the candidate files with
  lm-eval's own loader and quoting its error.

Nothing here builds lm-eval's index of its ~230 built-in folders unless asked
(``include_defaults``): that costs about 10 s.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import InputError

#: What each lm-eval output type asks a backend for.
NEEDS_SCORING = {"loglikelihood", "loglikelihood_rolling", "multiple_choice"}


def task_manager(include_path: Sequence[str | Path] = (), include_defaults: bool = False) -> Any:
    """An lm-eval ``TaskManager`` over ``include_path`` (and lm-eval's own tasks when
    ``include_defaults``), whose tasks read relative data files against their YAML's folder.

    Give it to ``lm_eval.simple_evaluate(task_manager=...)`` to run a suite from any folder.
    """
    from lm_eval.tasks import TaskManager

    manager = TaskManager(
        include_path=[str(p) for p in include_path] or None, include_defaults=include_defaults
    )
    factory = getattr(manager, "_factory", None)
    if factory is not None and not getattr(factory, "anchored", False):  # one per manager
        manager._factory = _anchored_factory(type(factory))(meta=factory._meta)
    return manager


def anchor_everywhere() -> None:
    """Make every ``TaskManager`` of this process read relative data files against their
    YAML's folder (``harness lm-eval`` does this before handing over to lm-eval's CLI)."""
    from lm_eval.tasks import manager

    if not getattr(manager.TaskFactory, "anchored", False):
        manager.TaskFactory = _anchored_factory(manager.TaskFactory)


def validation_index(folders: Sequence[Path], include_defaults: bool) -> Any:
    """The task manager ``harness validate`` reads twice (names, then output types): built
    once while the folders' YAML files are unchanged (their paths and mtimes are the key)."""
    stamp = tuple((str(p), p.stat().st_mtime_ns) for p in _yaml_files(folders))
    return _cached_index(tuple(str(f) for f in folders), include_defaults, stamp)


@functools.lru_cache(maxsize=4)
def _cached_index(folders: tuple[str, ...], include_defaults: bool, stamp: tuple[Any, ...]) -> Any:
    return task_manager(folders, include_defaults)


def _anchored_factory(base: type) -> type:
    class AnchoredFactory(base):  # type: ignore[misc, valid-type]
        """lm-eval's factory, reading relative data files against the YAML's folder."""

        anchored = True

        def _load_full_config(self, entry: Any, overrides: Any = None) -> dict[str, Any]:
            config: dict[str, Any] = super()._load_full_config(entry, overrides)
            if entry.yaml_path:
                anchor_data_files(config, Path(entry.yaml_path).parent)
            return config

    return AnchoredFactory


def anchor_data_files(config: dict[str, Any], folder: Path) -> None:
    """Make the relative data files that exist beside the YAML absolute, in place."""
    kwargs = config.get("dataset_kwargs")
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    if files is None:
        return

    def anchored(value: Any) -> Any:
        if isinstance(value, str) and not Path(value).is_absolute():
            candidate = folder / value
            return str(candidate.resolve()) if candidate.exists() else value
        if isinstance(value, list):
            return [anchored(v) for v in value]
        if isinstance(value, dict):
            return {k: anchored(v) for k, v in value.items()}
        return value

    kwargs["data_files"] = anchored(files)


def load(manager: Any, names: Sequence[str], folders: Sequence[Path]) -> dict[str, Any]:
    """``manager.load(names)``, or an :class:`InputError` with lm-eval's reason."""
    for name in names:
        check_name(manager, name, folders)
    try:
        return dict(manager.load(list(names)))
    except Exception as exc:
        raise InputError(
            f"lm-eval could not load {', '.join(names)}: {type(exc).__name__}: {exc}"
        ) from exc


def check_name(manager: Any, name: str, folders: Sequence[Path]) -> None:
    """Raise :class:`InputError` if lm-eval does not know ``name``, with the reason."""
    if name in manager.task_index or Path(name).suffix in (".yaml", ".yml"):
        if Path(name).suffix in (".yaml", ".yml"):
            _parse(Path(name))
        return
    broken = [problem for path in _yaml_files(folders) if (problem := _parse_error(path))]
    reason = f"; lm-eval could not read {broken[0]}" if broken else ""
    more = f" (and {len(broken) - 1} other file(s))" if len(broken) > 1 else ""
    where = ", ".join(str(f) for f in folders) or "no include_path"
    raise InputError(
        f"tasks: lm-eval knows no task, group or tag {name!r} in {where}{reason}{more}; "
        "check the name (lm-eval's `task:`/`group:` key), add its folder to include_path, "
        "or set include_defaults: true for lm-eval's own tasks"
    )


def _yaml_files(folders: Sequence[Path]) -> list[Path]:
    return sorted(p for folder in folders for p in Path(folder).glob("**/*.yaml"))


def _parse_error(path: Path) -> str | None:
    try:
        _parse(path)
    except InputError as exc:
        return str(exc)
    return None


def _parse(path: Path) -> dict[str, Any]:
    """A YAML task file as lm-eval's index reads it, or InputError with lm-eval's reason."""
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        config = load_yaml(path, resolve_func=False, recursive=True)
    except Exception as exc:
        message = " ".join(str(exc).split())
        raise InputError(f"{path}: {type(exc).__name__}: {message}") from exc
    if not any(key in config for key in ("task", "group", "class")):
        raise InputError(f"{path}: neither a `task:` nor a `group:` key")
    return config


def output_types(manager: Any, names: Sequence[str]) -> dict[str, str]:
    """``{task: output_type}`` for every leaf task the names reach, read from the index
    (YAML only: nothing is built, no dataset is opened). Python-class tasks are left out."""
    found: dict[str, str] = {}
    for name in names:
        _collect(manager.task_index, name, found, set())
    return found


def _collect(index: dict[str, Any], name: Any, found: dict[str, str], seen: set[str]) -> None:
    if isinstance(name, dict):  # an inline task inside a group
        if "task" in name and "class" not in name:
            found[str(name["task"])] = str(name.get("output_type", "generate_until"))
        return
    entry = index.get(name)
    if entry is None or name in seen:
        if entry is None and Path(str(name)).suffix in (".yaml", ".yml"):
            config = _parse(Path(str(name)))
            if "task" in config and "group" not in config:
                found[str(config["task"])] = str(config.get("output_type", "generate_until"))
        return
    seen.add(name)
    config = entry.cfg or {}
    kind = getattr(entry.kind, "name", "")
    if kind == "GROUP":
        children = config.get("task") or []
        for child in children if isinstance(children, list) else [children]:
            _collect(index, child, found, seen)
    elif kind == "TAG":  # a tag's entry lists its member tasks
        for member in sorted(entry.tags):
            _collect(index, member, found, seen)
    elif kind == "TASK":
        found[name] = str(config.get("output_type", "generate_until"))
