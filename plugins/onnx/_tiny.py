"""A tiny ONNX causal language model and a model folder around it, built with ``onnx``'s
helpers: no torch, no download. Tests (and anyone trying the ``onnx`` backend without
exporting a real model) get a folder laid out like ``harness models export`` writes one.

The graph has the inputs and outputs of optimum's ``text-generation-with-past`` export::

    inputs : input_ids [batch, seq] int64, attention_mask [batch, past+seq] int64,
             position_ids [batch, seq] int64,
             past_key_values.{i}.key / .value [batch, kv_heads, past, head_dim] float32
    outputs: logits [batch, seq, vocab] float32, present.{i}.key / .value

Per layer: grouped-query attention over ``Concat(past, new)`` with a causal mask built from the
past length and the attention mask (padding), then a small tanh MLP; token and learned position
embeddings in, a MatMul to the vocabulary out. Weights come from ``numpy.random.default_rng(seed)``:
the same arguments give the same file. The tokenizer is byte-level BPE with no merges (one
token per byte) plus ChatML's special tokens.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto
from onnx import helper
from onnx import numpy_helper

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_causal_lm(
    path: str | Path,
    vocab: int = 128,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    head_dim: int = 16,
    max_positions: int = 4096,
    seed: int = 0,
    opset: int = 17,
    ir_version: int = 8,
) -> Path:
    assert heads % kv_heads == 0
    rng = np.random.default_rng(seed)
    H, G = heads * head_dim, heads // kv_heads
    nodes, inits = [], []

    def w(name, shape, scale):
        inits.append(
            numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)
        )
        return name

    def const(name, value, dtype=np.int64):
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def node(op, ins, out, **attrs):
        nodes.append(helper.make_node(op, ins, [out], name=out, **attrs))
        return out

    # --- shapes / mask (shared by all layers) -------------------------------------------------
    const("c0", 0), const("c1", 1)
    const("ax0", [0]), const("ax1", [1]), const("ax_1_2_3", [1, 2, 3]), const("ax_g", [2])
    node("Shape", ["input_ids"], "ids_shape")
    node("Gather", ["ids_shape", "c1"], "S", axis=0)  # new tokens
    node("Shape", ["attention_mask"], "mask_shape")
    node("Gather", ["mask_shape", "c1"], "T", axis=0)  # past + new
    node("Sub", ["T", "S"], "P")  # past length
    node("Range", ["c0", "T", "c1"], "key_pos")  # [T]
    node("Range", ["P", "T", "c1"], "query_pos")  # [S]
    node("Unsqueeze", ["key_pos", "ax0"], "key_pos_row")  # [1,T]
    node("Unsqueeze", ["query_pos", "ax1"], "query_pos_col")  # [S,1]
    node("LessOrEqual", ["key_pos_row", "query_pos_col"], "causal")  # [S,T]
    node("Cast", ["attention_mask"], "pad_bool", to=TensorProto.BOOL)  # [B,T]
    node("Unsqueeze", ["pad_bool", "ax_1_2_3"], "pad5")  # [B,1,1,1,T]
    node("And", ["causal", "pad5"], "mask")  # [B,1,1,S,T]
    const("neg", np.float32(-1e9), np.float32)
    const("scale", np.float32(1.0 / np.sqrt(head_dim)), np.float32)
    const("q_shape", [0, 0, kv_heads, G, head_dim])  # [B,S,kvh,G,D]
    const("kv_shape", [0, 0, kv_heads, head_dim])  # [B,S,kvh,D]
    const("h_shape", [0, 0, H])

    # --- embeddings -----------------------------------------------------------------------------
    node("Gather", [w("embed", (vocab, H), 1.0), "input_ids"], "tok_emb", axis=0)
    node("Gather", [w("pos_embed", (max_positions, H), 0.5), "position_ids"], "pos_emb", axis=0)
    x = node("Add", ["tok_emb", "pos_emb"], "h0")

    for i in range(layers):
        p = f"l{i}_"
        q = node("MatMul", [x, w(p + "wq", (H, H), H**-0.5)], p + "q")
        k = node("MatMul", [x, w(p + "wk", (H, kv_heads * head_dim), H**-0.5)], p + "k")
        v = node("MatMul", [x, w(p + "wv", (H, kv_heads * head_dim), H**-0.5)], p + "v")
        q = node("Reshape", [q, "q_shape"], p + "q5")
        q = node("Transpose", [q], p + "qT", perm=[0, 2, 3, 1, 4])  # [B,kvh,G,S,D]
        k = node("Reshape", [k, "kv_shape"], p + "k4")
        k = node("Transpose", [k], p + "kT", perm=[0, 2, 1, 3])  # [B,kvh,S,D]
        v = node("Reshape", [v, "kv_shape"], p + "v4")
        v = node("Transpose", [v], p + "vT", perm=[0, 2, 1, 3])
        pk = node("Concat", [f"past_key_values.{i}.key", k], f"present.{i}.key", axis=2)
        pv = node("Concat", [f"past_key_values.{i}.value", v], f"present.{i}.value", axis=2)
        node("Unsqueeze", [pk, "ax_g"], p + "k5")  # [B,kvh,1,T,D]
        node("Unsqueeze", [pv, "ax_g"], p + "v5")
        node("Transpose", [p + "k5"], p + "k5T", perm=[0, 1, 2, 4, 3])  # [B,kvh,1,D,T]
        node("MatMul", [q, p + "k5T"], p + "scores_raw")  # [B,kvh,G,S,T]
        node("Mul", [p + "scores_raw", "scale"], p + "scores")
        node("Where", ["mask", p + "scores", "neg"], p + "scores_masked")
        node("Softmax", [p + "scores_masked"], p + "probs", axis=-1)
        node("MatMul", [p + "probs", p + "v5"], p + "ctx")  # [B,kvh,G,S,D]
        node("Transpose", [p + "ctx"], p + "ctxT", perm=[0, 3, 1, 2, 4])  # [B,S,kvh,G,D]
        node("Reshape", [p + "ctxT", "h_shape"], p + "ctx_h")
        node("MatMul", [p + "ctx_h", w(p + "wo", (H, H), H**-0.5)], p + "attn_out")
        x = node("Add", [x, p + "attn_out"], p + "h_attn")
        node("MatMul", [x, w(p + "w1", (H, 2 * H), H**-0.5)], p + "mlp_in")
        node("Tanh", [p + "mlp_in"], p + "mlp_act")
        node("MatMul", [p + "mlp_act", w(p + "w2", (2 * H, H), (2 * H) ** -0.5)], p + "mlp_out")
        x = node("Add", [x, p + "mlp_out"], p + "h_out")
    node("MatMul", [x, w("lm_head", (H, vocab), H**-0.5 * 3.0)], "logits")

    B, S, Pd, Td = (
        "batch_size",
        "sequence_length",
        "past_sequence_length",
        "past_sequence_length + sequence_length",
    )
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, [B, S]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [B, Td]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, [B, S]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [B, S, vocab])]
    for i in range(layers):
        for kind in ("key", "value"):
            inputs.append(
                helper.make_tensor_value_info(
                    f"past_key_values.{i}.{kind}", TensorProto.FLOAT, [B, kv_heads, Pd, head_dim]
                )
            )
            outputs.append(
                helper.make_tensor_value_info(
                    f"present.{i}.{kind}", TensorProto.FLOAT, [B, kv_heads, Td, head_dim]
                )
            )
    graph = helper.make_graph(nodes, "tiny_causal_lm", inputs, outputs, inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tiny_lm.py"
    )
    model.ir_version = ir_version
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def make_tiny_model_folder(folder: str | Path, layers: int = 2, seed: int = 0) -> Path:
    """A model folder the ``onnx`` backend loads: ``model.onnx``, ``tokenizer.json``,
    ``tokenizer_config.json`` (ChatML template, ``<|im_end|>`` as end of turn), ``config.json``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = _byte_tokenizer()
    vocab = tokenizer.get_vocab_size()
    make_tiny_causal_lm(folder / "model.onnx", vocab=vocab, layers=layers, seed=seed)
    tokenizer.save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", _tokenizer_config())
    _write_json(folder / "config.json", _config(vocab, layers))
    return folder


def _byte_tokenizer() -> Any:
    """Byte-level BPE without merges: 256 byte tokens after the special tokens."""
    from tokenizers import Tokenizer
    from tokenizers import decoders
    from tokenizers import models
    from tokenizers import pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {token: i for i, token in enumerate(SPECIALS + sorted(alphabet))}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIALS)
    return tokenizer


def _tokenizer_config() -> dict[str, Any]:
    return {
        "chat_template": CHATML,
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "pad_token": "<|im_end|>",
        "add_bos_token": False,
    }


def _config(vocab: int, layers: int) -> dict[str, Any]:
    return {
        "model_type": "tiny-test",
        "vocab_size": vocab,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "hidden_size": 64,
        "max_position_embeddings": 4096,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
