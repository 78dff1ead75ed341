"""Which binding runs the ``llamacpp`` backend (the ``engine`` parameter)."""

from __future__ import annotations

import importlib.util
from typing import Any

from harness import BuildContext

from . import LlamaCppParams


def resolve(engine: str) -> str:
    """``auto``: xllamacpp when installed (prebuilt wheels), else llama-cpp-python."""
    if engine != "auto":
        return engine
    return "xllamacpp" if importlib.util.find_spec("xllamacpp") else "llama-cpp-python"


def build(params: LlamaCppParams, context: BuildContext) -> Any:
    if resolve(params.engine) == "xllamacpp":
        from ._xengine import XLlamaCppBackend

        return XLlamaCppBackend(params, context)
    from ._backend import LlamaCppBackend

    return LlamaCppBackend(params, context)
