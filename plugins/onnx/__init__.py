"""Backend ``onnx``: causal language models on ONNX Runtime, in this process, with a KV cache.

Hooks and parameters only (cheap to import): the backend lives in
:mod:`harness_plugins.onnx._backend`, imported when a manifest uses it. ``model`` is a model
folder (``model.onnx`` or ``model.ort`` with ``tokenizer.json``, ``tokenizer_config.json`` and
``config.json``, as ``harness models export`` writes it) or the name of a variant in the local
model store. Needs the ``onnx`` extra: ``pip install -e .[onnx]`` (onnxruntime, tokenizers and
onnxruntime-genai; no torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from harness import InputError
from harness import Operational
from harness import Params
from harness import Register
from harness import hookimpl
from harness import param


@hookimpl
def register_backends(register: Register) -> None:
    register("onnx", "harness_plugins.onnx._backend:OnnxBackend", params=OnnxParams)


class OnnxParams(Params):
    """A causal LM on ONNX Runtime (fp32, int8, int4 or the mobile .ort format), with timings."""

    model: str = param(
        description="Model folder (relative to the manifest) or a model store variant name "
        "(`harness models list`)."
    )
    file: str | None = param(
        None,
        description="The model file inside the folder (default: model.onnx, else model.ort).",
    )
    threads: Operational[int | None] = param(
        None, minimum=1, description="Intra-op threads (default: os.cpu_count())."
    )
    spinning: Operational[bool] = param(
        False,
        description="Let ONNX Runtime's threads spin-wait between steps: a little faster on an "
        "idle machine, much slower when another process holds a core.",
    )
    provider: str = param("CPUExecutionProvider", description="ONNX Runtime execution provider.")
    n_ctx: int = param(2048, minimum=16, description="Most tokens of prompt plus answer.")
    max_tokens: int = param(
        256, minimum=1, description="Most tokens generated per request, unless the request says."
    )
    temperature: float = param(0, minimum=0, description="Sampling temperature; 0 is greedy.")
    top_p: float = param(1.0, minimum=0, description="Nucleus sampling mass.")
    top_k: int = param(0, minimum=0, description="Top-k cut-off (0: none).")
    seed: int | None = param(
        None, description="Sampling seed (default: the request's, else run.seed, else 0)."
    )
    warmup: Operational[int] = param(
        1, minimum=0, description="Unrecorded generations before the first sample."
    )
    max_calls: int = param(8, minimum=1, description="Constrained mode: most calls in one answer.")
    engine: Literal["auto", "loop", "genai"] = param(
        "auto",
        description="How tokens are generated: loop (our KV-cache loop over ONNX Runtime), "
        "genai (onnxruntime-genai), or auto: loop, and genai for constrained mode.",
    )

    def capabilities(self) -> frozenset[str]:
        """Scoring always; constrained calls when onnxruntime-genai (its grammar engine) is
        installed; ``layers`` (the ``layerwise`` task) when the ``onnx`` package, which rewrites
        the graph, and torch (the task's other half) are."""
        import importlib.util

        def has(name: str) -> bool:
            return importlib.util.find_spec(name) is not None

        return frozenset(
            {"native_tools", "streaming", "logprobs", "loglikelihood"}
            | ({"constrained"} if has("onnxruntime_genai") else set())
            | ({"layers"} if has("onnx") and has("torch") else set())
        )

    def preflight(self, base_dir: Path) -> list[str]:
        """The folder (or variant), its model file and its tokenizer exist."""
        from ._model import locate

        try:
            locate(self.model, base_dir, self.file)
        except InputError as exc:
            return [f"model: {exc}"]
        return []


Mode = Literal["prompt", "native", "constrained"]
