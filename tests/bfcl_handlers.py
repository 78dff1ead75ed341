"""BFCL's own prompt and tool builders (``bfcl_eval.model_handler.utils``), imported with
stubs for what they would pull in but never use here: its model registry (every provider SDK)
and tree-sitter (its Java and JavaScript parsers). Tests only; ``pip install --no-deps
bfcl-eval==2026.3.23`` is all it needs."""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any


class _Inert:
    """Stands in for tree-sitter's Language and Parser: every attribute is a no-op."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _stubs() -> dict[str, types.ModuleType]:
    config = types.ModuleType("bfcl_eval.constants.model_config")
    config.MODEL_CONFIG_MAPPING = {}  # type: ignore[attr-defined]
    out = {"bfcl_eval.constants.model_config": config}
    for name in ("tree_sitter", "tree_sitter_java", "tree_sitter_javascript"):
        module = types.ModuleType(name)
        module.Language = module.Parser = _Inert  # type: ignore[attr-defined]
        module.language = lambda: None  # type: ignore[attr-defined]
        out[name] = module
    return out


def bfcl_modules() -> types.SimpleNamespace | None:
    """``utils`` (BFCL's data helpers), ``handler`` (model_handler.utils) and ``ModelStyle``,
    or None when bfcl-eval is not installed."""
    if importlib.util.find_spec("bfcl_eval") is None:
        return None
    stubs = _stubs()
    saved = {k: sys.modules.get(k) for k in stubs}
    for key, module in stubs.items():
        sys.modules.setdefault(key, module)
    try:
        import bfcl_eval.model_handler.utils as handler
        import bfcl_eval.utils as utils
        from bfcl_eval.constants.enums import ModelStyle
        from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI
    finally:
        for key, module in saved.items():
            if module is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = module
    return types.SimpleNamespace(
        utils=utils, handler=handler, ModelStyle=ModelStyle, mapping=GORILLA_TO_OPENAPI
    )
