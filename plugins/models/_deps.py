"""The optional packages each command needs, imported on demand: a missing one is a one-line
error that names the extra (or script) that installs it, never an ImportError traceback."""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

from harness import HarnessError

LLAMA_INSTALL = "bash scripts/install.sh test"
EXTRA_INSTALL = 'pip install -e ".[{extra}]"'
# The export pipeline: import name -> distribution to install.
EXPORT_MODULES = {
    "torch": "torch",
    "transformers": "transformers",
    "accelerate": "accelerate",
    "optimum.exporters.onnx": "optimum-onnx",
    "onnx": "onnx",
    "onnx_ir": "onnx-ir",
    "onnxruntime": "onnxruntime",
    "gguf": "gguf",
}


class MissingDependency(HarnessError):
    """An optional package the command needs is not installed (usage error: exit 2)."""

    exit_code = 2


def need_llama_cpp() -> ModuleType:
    """llama-cpp-python, whose C API includes llama.cpp's quantizer."""
    try:
        return importlib.import_module("llama_cpp")
    except Exception as exc:
        raise MissingDependency(
            f"harness models quantize needs llama-cpp-python for llama.cpp's quantizer "
            f"(xllamacpp, the default engine, has none); install it with `{LLAMA_INSTALL}` "
            f"({type(exc).__name__}: {exc})"
        ) from None


def need_gguf(extra: str) -> ModuleType:
    """The ``gguf`` package (reads and writes GGUF tensors in numpy)."""
    try:
        return importlib.import_module("gguf")
    except ImportError:
        raise MissingDependency(
            f"this step needs the gguf package (the `{extra}` extra): "
            f"{EXTRA_INSTALL.format(extra=extra)}, or pip install gguf"
        ) from None


def missing_for_export() -> list[str]:
    """Distributions of the ``export`` extra that are not installed (found without importing
    them: torch alone takes seconds to import)."""
    missing = []
    for module, dist in EXPORT_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package (optimum) is missing
            found = False
        if not found:
            missing.append(dist)
    return missing


def offline() -> None:
    """No downloads at run time: the hub libraries read these when first imported (which
    ``find_spec("optimum.exporters.onnx")`` already does for optimum)."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def need_export_extra() -> None:
    """Fail before any work when a package of the ``export`` extra is missing."""
    offline()
    missing = missing_for_export()
    if missing:
        raise MissingDependency(
            f"harness models export needs the `export` extra (missing: {', '.join(missing)}); "
            f"install it with `{EXTRA_INSTALL.format(extra='export')}` in the harness checkout "
            "(add --extra-index-url https://download.pytorch.org/whl/cpu for a CPU-only torch)"
        )
