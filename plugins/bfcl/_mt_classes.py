"""BFCL's multi-turn API classes (file system, trading bot, travel...) loaded from the wheel's
own source files, and the execution of calls on them without ``eval``.

The ``bfcl_eval`` package is never imported (its package imports pull provider SDKs): each
class file is loaded with ``importlib.util.spec_from_file_location`` under a private module
name. Four of them import ``long_context.py`` by its absolute ``bfcl_eval`` name; that one name
is mapped to our private copy only while they load, so no ``bfcl_eval`` module is left behind.

A :class:`World` is one episode's instances, built from the entry's ``initial_config`` as
BFCL's ``execute_multi_turn_func_call`` builds them. BFCL runs a model's call by ``eval`` of
its text; here a decoded call runs as ``getattr(instance, name)(**arguments)`` and only when
``name`` is a documented function of an involved class, with BFCL's result text (a string
as is, a dict as JSON, anything else ``str``; an exception as ``Error during execution: ...``).
What BFCL's text handling does to the arguments before its eval (a rewrite of ``word (``
inside strings) is reproduced on the values (:func:`as_bfcl_reads`). Ground-truth call
strings are parsed with ``ast``: a plain name and literal arguments only.
"""

from __future__ import annotations

import ast
import copy
import functools
import importlib.util
import inspect
import json
import math
import re
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import InputError
from harness import ToolCall

from . import _data as data

#: BFCL's class name -> (its source file in func_source_code/, its docs in multi_turn_func_doc/)
CLASSES: dict[str, tuple[str, str]] = {
    "GorillaFileSystem": ("gorilla_file_system", "gorilla_file_system.json"),
    "MathAPI": ("math_api", "math_api.json"),
    "MessageAPI": ("message_api", "message_api.json"),
    "TwitterAPI": ("posting_api", "posting_api.json"),
    "TicketAPI": ("ticket_api", "ticket_api.json"),
    "TradingBot": ("trading_bot", "trading_bot.json"),
    "TravelAPI": ("travel_booking", "travel_booking.json"),
    "VehicleControlAPI": ("vehicle_control", "vehicle_control.json"),
}
STATELESS = frozenset({"MathAPI"})  # BFCL's STATELESS_CLASSES: no _load_scenario
#: Names BFCL refuses before its eval (``execute_multi_turn_func_call``).
FORBIDDEN = frozenset({"kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run"})
PRIVATE_PACKAGE = "_harness_bfcl_multi_turn"
LONG_CONTEXT_NAME = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code.long_context"
#: Beyond these, MathAPI would compute for minutes (BFCL would too); refused as an error.
MAX_EXPONENT = 10_000
MAX_PRECISION = 10_000

#: What BFCL's ``_process_method_calls`` rewrites in a call's text before its eval: a name
#: right before "(" (the spaces between are dropped).
CALL_IN_TEXT = re.compile(r"\b([a-zA-Z_]\w*)\s*(?=\()")
#: BFCL's checker's instance names: the model's, and the ground truth's ("<model>_eval...").
ROLES = {"model": "model_eval", "ground_truth": "model_ground_truth_eval"}

_lock = threading.Lock()
_running = threading.Lock()  # one call at a time in the process, whatever the episode
_modules: dict[str, ModuleType] = {}


def source_dir() -> Path:
    return data.data_dir().parent / "eval_checker" / "multi_turn_eval" / "func_source_code"


def _load(stem: str) -> ModuleType:
    """One source file as the private module ``_harness_bfcl_multi_turn.<stem>``."""
    path = source_dir() / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"{PRIVATE_PACKAGE}.{stem}", path)
    if spec is None or spec.loader is None or not path.exists():
        raise InputError(f"{path}: BFCL's multi-turn source is missing; {data.INSTALL_HINT}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as exc:  # MathAPI needs mpmath
        raise InputError(
            f"{path}: cannot load BFCL's API class ({exc}); pip install mpmath"
        ) from None
    return module


def _module(stem: str) -> ModuleType:
    """A class file's module, loaded once per process like an import; under a lock, so that
    concurrent episodes never get two copies of a class (their instances would never
    compare equal)."""
    with _lock:
        if stem not in _modules:
            _modules[stem] = _load_with_long_context(stem)
        return _modules[stem]


def _load_with_long_context(stem: str) -> ModuleType:
    if "long_context" not in _modules:
        _modules["long_context"] = _load("long_context")
    saved = sys.modules.get(LONG_CONTEXT_NAME)
    sys.modules[LONG_CONTEXT_NAME] = _modules["long_context"]  # only while the file loads
    try:
        return _load(stem)
    finally:
        if saved is None:
            sys.modules.pop(LONG_CONTEXT_NAME, None)
        else:
            sys.modules[LONG_CONTEXT_NAME] = saved


def api_class(name: str) -> type:
    """BFCL's class ``name`` (GorillaFileSystem, TradingBot...)."""
    if name not in CLASSES:
        raise InputError(f"unknown BFCL multi-turn class {name!r}; known: {', '.join(CLASSES)}")
    cls: type = getattr(_module(CLASSES[name][0]), name)
    return cls


@functools.cache
def func_docs(name: str) -> tuple[dict[str, Any], ...]:
    """The class's function docs (BFCL's JSON Lines file), in file order."""
    path = data.data_dir() / "multi_turn_func_doc" / CLASSES[name][1]
    if not path.exists():
        raise InputError(f"{path}: BFCL's function docs are missing; {data.INSTALL_HINT}")
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(json.loads(line) for line in lines if line.strip())


def documented(classes: list[str]) -> dict[str, str]:
    """Function name -> the class that answers it; a later class wins a shared name, as in
    BFCL's method mapping (no two classes share one in BFCL's data)."""
    return {doc["name"]: cls for cls in classes for doc in func_docs(cls)}


def is_long_context(entry_id: str) -> bool:
    """BFCL's rule: on the category in the id (``multi_turn_long_context_3``)."""
    category = entry_id.rsplit("_", 1)[0]
    return "long_context" in category or "composite" in category


class World:
    """One episode's instances of the entry's classes, and the calls run on them.

    ``role`` names the instances as BFCL's checker names them (the model's, the ground
    truth's): BFCL rewrites a call's text with those names before its eval, string arguments
    included (see :func:`as_bfcl_reads`), so the same text can differ between the two."""

    def __init__(self, entry: Mapping[str, Any], role: str = "model") -> None:
        self.classes: list[str] = list(entry["involved_classes"])
        config: Mapping[str, Any] = entry.get("initial_config") or {}
        long_context = is_long_context(str(entry["id"]))
        self.instances: dict[str, Any] = {}
        for name in self.classes:
            instance = api_class(name)()
            if name not in STATELESS:
                scenario = copy.deepcopy(config.get(name, {}))
                instance._load_scenario(scenario, long_context=long_context)
            self.instances[name] = instance
        self.owner = documented(self.classes)
        base = f"{ROLES[role]}_{entry['id']}"
        self.targets = {
            fn: re.sub(r"[-./:]", "_", f"{base}_{cls}_instance") for fn, cls in self.owner.items()
        }

    def run(self, call: ToolCall) -> tuple[str, bool]:
        """BFCL's result text for ``call`` and whether it ran without raising."""
        name = call.name
        if name in FORBIDDEN:
            return f"Error during execution: Function call {name} is not allowed.", False
        owner = self.owner.get(name)
        if owner is None:
            return f"Error during execution: name '{name}' is not defined", False
        refused = _too_costly(name, call.arguments)
        if refused:
            return f"Error during execution: {refused}", False
        method = getattr(self.instances[owner], name)
        with _running:  # BFCL's classes share module state (mpmath's precision, a dict)
            try:  # the API's own code (BFCL's), on a copy of the untrusted arguments
                result = method(**as_bfcl_reads(dict(call.arguments), self.targets))
            except Exception as exc:
                return f"Error during execution: {exc}", False
            return _as_text(result), True


def as_bfcl_reads(value: Any, targets: Mapping[str, str]) -> Any:
    """A copy of an argument value as BFCL's ``eval`` reads it back from the call's text.

    BFCL writes a call as ``name(key=repr(value), ...)`` and, before its eval, rewrites every
    ``word (`` in that text to ``word(``, or to ``<instance>.word(`` when ``word`` is a
    method: inside string literals too. A string is therefore rewritten on its ``repr`` and
    read back with ``ast.literal_eval``. A float that is not finite is written ``nan`` or
    ``inf``, which the eval cannot read."""
    if isinstance(value, str):
        if "(" not in value:
            return value
        text = repr(value)
        rewritten = CALL_IN_TEXT.sub(lambda m: _prefixed(m[1], targets), text)
        return value if rewritten == text else ast.literal_eval(rewritten)
    if isinstance(value, float) and not math.isfinite(value):
        raise NameError(f"name '{'nan' if math.isnan(value) else 'inf'}' is not defined")
    if isinstance(value, list | tuple):
        return type(value)(as_bfcl_reads(v, targets) for v in value)
    if isinstance(value, dict):
        return {as_bfcl_reads(k, targets): as_bfcl_reads(v, targets) for k, v in value.items()}
    return value


def _prefixed(word: str, targets: Mapping[str, str]) -> str:
    return f"{targets[word]}.{word}" if word in targets else word


def _as_text(result: Any) -> str:
    """BFCL's conversion of a return value to the execution result it compares."""
    if type(result) is str:
        return result
    if type(result) is dict:
        try:
            return json.dumps(result)
        except Exception:  # BFCL's bare except: an object json cannot write
            return str(result)
    return str(result)


def _too_costly(name: str, arguments: Mapping[str, Any]) -> str | None:
    """A MathAPI call whose integer arithmetic would not finish (a 10**9 exponent, a
    precision of a million digits): untrusted output must not hang the run."""
    base, exponent = arguments.get("base"), arguments.get("exponent")
    if name == "power" and type(base) is type(exponent) is int and exponent > MAX_EXPONENT:
        return f"exponent {exponent} is too large to compute (limit {MAX_EXPONENT})"
    precision = arguments.get("precision")
    costly = type(precision) is int and precision > MAX_PRECISION
    if name in ("logarithm", "square_root") and costly:
        return f"precision {precision} is too large to compute (limit {MAX_PRECISION})"
    return None


# --- ground truth -------------------------------------------------------------------------------


def parse_ground_truth(text: str, classes: list[str]) -> ToolCall:
    """A ground-truth call string (``mv(source='a', destination='b')``, ``sort('f.pdf')``) as
    a call with keyword arguments: parsed with ``ast``, never evaluated. Positional arguments
    are bound to the method's parameter names."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(f"not a call: {text!r} ({exc.msg})") from None
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
        raise ValueError(f"not a plain function call: {text!r}")
    try:
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except (ValueError, TypeError, SyntaxError, RecursionError):
        raise ValueError(f"arguments are not literals: {text!r}") from None
    if any(k.arg is None for k in node.keywords):
        raise ValueError(f"**arguments are not supported: {text!r}")
    name = node.func.id
    if args:
        kwargs = _bind(name, classes, args, kwargs)
    return ToolCall(name, kwargs)


def _bind(name: str, classes: list[str], args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    owner = documented(classes).get(name)
    if owner is None:
        raise ValueError(f"{name}: positional arguments for an unknown function")
    signature = inspect.signature(getattr(api_class(owner), name))
    try:
        bound = signature.bind(None, *args, **kwargs)  # None stands for self
    except TypeError as exc:
        raise ValueError(f"{name}: {exc}") from None
    return {k: v for k, v in bound.arguments.items() if k != "self"}
