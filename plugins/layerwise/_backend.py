"""Backend ``torch``: a GGUF's dequantized weights in the plain-torch decoder of :mod:`._llama`.

It scores texts (``logprobs``, ``loglikelihood``) and hands the ``layerwise`` task the model
itself (``layers``). It does not generate: chats belong to ``llamacpp``, which runs the same
file far faster.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from harness_plugins.shared import scoring
from harness_plugins.shared.models import resolve_model

from harness import Backend
from harness import BuildContext
from harness import InputError

from . import TorchParams
from ._llama import Llama
from ._llama import load_gguf
from ._tokenizer import GGUFTokenizer
from ._torch import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TorchBackend(Backend):
    """One GGUF model in torch; requests are served one at a time."""

    capabilities = frozenset({"logprobs", "loglikelihood", "layers"})
    max_concurrency = 1
    params: TorchParams

    def __init__(self, params: TorchParams, context: BuildContext) -> None:
        super().__init__(params, context)
        if params.threads:
            torch.set_num_threads(params.threads)
        self.model = resolve_model(params.model, context.base_dir, params.sha256)
        started = time.perf_counter()
        self.llama, self.fields = load_gguf(self.model.path, DTYPES[params.dtype])
        if params.weights:
            _overlay(self.llama, Path(params.weights))
        self.llama.requires_grad_(False)  # inference only: derivatives are taken on states
        self.tokenizer = GGUFTokenizer(self.fields)
        self.load_s = time.perf_counter() - started
        self._lock = threading.Lock()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of raw ``text``, without BOS (as llama.cpp's ``tokenize(add_bos=False)``)."""
        return self.tokenizer.encode(text, bos=False)

    def logprobs(self, text: str) -> tuple[list[int], np.ndarray]:
        """Teacher forcing over ``text``: its ids and, for every token after the first, the
        log-probabilities that predicted it (the ``onnx`` backend's convention)."""
        ids = self.tokenize(text)
        with self._lock, torch.no_grad():
            rows = self.llama.run(ids).logprobs[:-1]
        return ids, rows.double().numpy()

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        return scoring.loglikelihood(self, context, continuation)

    def layer_model(self) -> tuple[Llama, GGUFTokenizer]:
        """The model and tokenizer for the ``layerwise`` task (``layers`` capability)."""
        return self.llama, self.tokenizer

    def info(self) -> dict[str, Any]:
        return {
            "runtime": "torch",
            "runtime_version": torch.__version__,
            "model_path": str(self.model.path),
            "model_sha256": self.model.sha256,
            "model_card": self.model.card,
            "model_size_bytes": self.model.path.stat().st_size,
            "weights": self.params.weights,
            "dtype": self.params.dtype,
            "load_s": round(self.load_s, 3),
            "tensor_types": _type_counts(self.fields.get("harness.tensor_types") or {}),
        }


def _overlay(model: Llama, path: Path) -> None:
    """Lay a saved state dict over the GGUF's weights; a file for another shape is refused."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(
            f"weights: {path} does not fit this model ({first}); give a state dict saved "
            "from the same GGUF's architecture (scripts/layerwise_repair.py --save-weights)"
        ) from None


def _type_counts(types: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind in types.values():
        counts[kind] = counts.get(kind, 0) + 1
    return counts
