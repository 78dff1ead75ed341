"""Layer-wise diagnostics: where a changed model (quantized, distilled, fine-tuned) departs from
its reference, layer by layer, and the learning-rate multipliers a layer-wise repair would use.

- backend ``torch``: a llama-architecture GGUF (card, store variant or path) with its weights
  dequantized into torch: it scores texts (``logprobs``, ``loglikelihood``: the logit probe,
  lm-eval's multiple-choice tasks) and exposes every layer to the ``layerwise`` task
  (``layers`` capability). It does not generate: use ``llamacpp`` for chats.
- task ``layerwise``: each probe paragraph through the reference and the backend under test;
  per layer, hidden-state relative L2 / cosine / linear CKA, attention Jensen-Shannon, Jacobian
  alignment and Hutchinson curvature, plus llama.cpp's KL statistics at the output.
- metric ``layerwise_stats``: the output statistics and each family's largest divergence.

Needs the ``layerwise`` extra (``pip install -e .[layerwise]``: torch CPU, gguf, tokenizers).
Hooks and parameters only: the parts live in the private modules. See docs/layerwise.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from typing import Literal

from harness import Operational
from harness import Params
from harness import Register
from harness import ReportSection
from harness import RunView
from harness import hookimpl
from harness import param

Family = Literal["hidden", "attention", "jacobian", "curvature"]
ALL_FAMILIES: list[Family] = ["hidden", "attention", "jacobian", "curvature"]


@hookimpl
def register_backends(register: Register) -> None:
    register("torch", "harness_plugins.layerwise._backend:TorchBackend", params=TorchParams)


@hookimpl
def register_tasks(register: Register) -> None:
    register("layerwise", "harness_plugins.layerwise._task:LayerwiseTask", params=LayerwiseParams)


@hookimpl
def register_metrics(register: Register) -> None:
    register("layerwise_stats", "harness_plugins.layerwise._task:LayerwiseStats")


@hookimpl
def report_sections(run: RunView) -> list[ReportSection]:
    """ "Layer by layer": per-layer curves of every family, a line per backend."""
    from ._report import sections

    return sections(run)


def onnx_layer_model(
    model_file: Path, tokenizer: Any, settings: dict[str, Any], threads: int | None
) -> tuple[Any, Any]:
    """The public door for the ``onnx`` backend's ``layers`` capability: an ONNX file's
    graph rewritten so its block boundaries can be read and overridden, and the folder's
    tokenizer wrapped as the task expects (the parts live in a private module)."""
    from ._onnx_layers import OnnxForward
    from ._onnx_layers import OnnxTokenizer

    return OnnxForward(model_file, threads=threads), OnnxTokenizer(tokenizer, settings)


class TorchParams(Params):
    """A llama-architecture GGUF with its weights dequantized into torch (CPU)."""

    model: str = param(
        description="GGUF file (relative to the manifest), model card or store variant name "
        "(`harness models list`)."
    )
    sha256: str | None = param(None, description="Expected sha256 of the file (cards carry it).")
    weights: str | None = param(
        None,
        format="file",
        description="A torch state dict (.pt) laid over the GGUF's weights: a repaired or "
        "fine-tuned copy (scripts/layerwise_repair.py --save-weights writes them).",
    )
    dtype: Literal["float32", "float64"] = param("float32", description="Compute precision.")
    threads: Operational[int | None] = param(
        None, minimum=1, description="torch intra-op threads (default: torch's own choice)."
    )


class LayerwiseParams(Params):
    """Compare each backend with a reference, layer by layer, on a probe text."""

    reference: dict[str, Any] = param(
        description="The reference model's backend entry, of a backend with the `layers` "
        "capability, e.g. {type: torch, model: smollm2-135m-instruct}.",
        schema={"required": ["type"]},
    )
    text: str | None = param(
        None,
        format="file",
        description="Text file, one probe per paragraph (blank-line separated); default: the "
        "project's probe text (registry/data/text/probe.txt, 8 paragraphs).",
    )
    limit: int | None = param(None, minimum=1, description="Probe only the first N paragraphs.")
    max_tokens: int = param(
        96, minimum=2, description="Cut each paragraph to its first N tokens (memory and time)."
    )
    families: list[Family] = param(
        list(ALL_FAMILIES),
        description="Divergence families to compute: hidden, attention, jacobian, curvature "
        "(the output statistics are always computed).",
    )
    hutchinson_samples: int = param(
        4, minimum=1, description="Rademacher vectors per layer for the curvature estimate."
    )
    lr_family: Family = param(
        "jacobian", description="The family whose divergences set the learning-rate multipliers."
    )
    lr_mapping: Literal["linear", "softmax", "rank"] = param(
        "linear",
        description="g(D): linear = clip(D / mean D), softmax = L softmax(D / (T mean D)), "
        "rank = from lr_min (least divergent) to lr_max (most).",
    )
    lr_min: float = param(0.5, minimum=0, description="Smallest multiplier.")
    lr_max: float = param(2.0, minimum=0, description="Largest multiplier.")
    lr_temperature: float = param(1.0, minimum=1e-6, description="T of the softmax mapping.")
