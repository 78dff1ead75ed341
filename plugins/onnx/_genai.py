"""Constrained decoding on the same model files through onnxruntime-genai, whose guidance
(llguidance, compiled into its wheel) masks every token that would leave a JSON Schema.

onnxruntime-genai reads a ``genai_config.json`` beside the model. The model folder is never
written to: a private folder holds the config and links to the folder's files, and the sizes it
needs come from the graph (the cache inputs) that our own loop already read.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from ._decode import KVDecoder
from ._decode import Tokens
from ._model import ModelFolder


class GenaiModel:
    """An ``og.Model`` over a model folder, with its private config folder."""

    def __init__(
        self, model: ModelFolder, decoder: KVDecoder, threads: int, n_ctx: int, stops: set[int]
    ) -> None:
        import onnxruntime_genai as og

        self._folder = tempfile.TemporaryDirectory(prefix="harness-genai-")
        root = Path(self._folder.name)
        for item in model.folder.iterdir():
            if item.name != "genai_config.json":
                (root / item.name).symlink_to(item)
        config = genai_config(model, decoder, threads, n_ctx, stops)
        (root / "genai_config.json").write_text(json.dumps(config), encoding="utf-8")
        self.model = og.Model(str(root))
        self.vocab = int(decoder.vocab)


def genai_config(
    model: ModelFolder, decoder: KVDecoder, threads: int, n_ctx: int, stops: set[int]
) -> dict[str, Any]:
    """onnxruntime-genai's description of an optimum-style decoder graph."""
    settings = model.settings()
    layers = len(decoder.past) // 2
    heads = int(settings.get("num_attention_heads") or decoder.kv_heads)
    session = {"intra_op_num_threads": threads, "inter_op_num_threads": 1, "provider_options": []}
    return {
        "model": {
            "bos_token_id": int(settings.get("bos_token_id") or 0),
            "eos_token_id": sorted(stops) or 0,
            "pad_token_id": int(settings.get("pad_token_id") or 0),
            "context_length": n_ctx,
            "vocab_size": int(decoder.vocab),
            "type": "llama",
            "decoder": {
                "filename": model.model_file.name,
                "session_options": session,
                "head_size": decoder.head_dim,
                "hidden_size": int(settings.get("hidden_size") or heads * decoder.head_dim),
                "num_attention_heads": heads,
                "num_hidden_layers": layers,
                "num_key_value_heads": decoder.kv_heads,
                "inputs": {
                    "input_ids": "input_ids",
                    "attention_mask": "attention_mask",
                    "position_ids": "position_ids",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
            },
        },
        "search": {"do_sample": False, "num_beams": 1, "max_length": n_ctx},
    }


def generate(
    genai: GenaiModel,
    prompt: list[int],
    max_new: int,
    stop: set[int],
    sampling: dict[str, Any],
    schema: str | None = None,
) -> Tokens:
    """Tokens after ``prompt`` from onnxruntime-genai's generator: greedy at temperature 0,
    else seeded sampling; with ``schema`` (a JSON Schema, as text) every token that would
    leave it is masked."""
    import onnxruntime_genai as og

    params = og.GeneratorParams(genai.model)
    params.set_search_options(**search_options(len(prompt) + max_new, sampling, genai.vocab))
    if schema is not None:
        params.set_guidance("json_schema", schema)
    generator = og.Generator(genai.model, params)
    started, first, out = time.perf_counter(), None, []
    generator.append_tokens(prompt)
    finish = "length"
    while not generator.is_done() and len(out) < max_new:
        generator.generate_next_token()
        token = int(generator.get_next_tokens()[0])
        first = first or time.perf_counter()
        if token in stop:
            finish = "stop"
            break
        out.append(token)
    return Tokens(out, finish, started, first, time.perf_counter())


def search_options(max_length: int, sampling: dict[str, Any], vocab: int) -> dict[str, Any]:
    """onnxruntime-genai's search options for our sampling settings (top-k 0: no cut-off)."""
    if sampling["temperature"] <= 0:
        return {"max_length": max_length, "do_sample": False}
    options = {
        "max_length": max_length,
        "do_sample": True,
        "temperature": sampling["temperature"],
        "top_p": sampling["top_p"],
        "random_seed": sampling["seed"],
    }
    return options | {"top_k": sampling["top_k"] or vocab}
