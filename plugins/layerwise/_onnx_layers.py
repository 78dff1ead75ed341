"""An ONNX causal LM as a :class:`._forward.ForwardModel`: every block boundary (and attention
map, when the graph has them) read out, any boundary overridable, on ONNX Runtime.

ONNX Runtime returns graph outputs only, and has no autograd. So the graph is rewritten with the
``onnx`` package before the session is made:

- the **boundaries** (the embedding output and each decoder layer's residual output) are found
  by node-name patterns (:data:`PATTERNS`, overridable): the export names its nodes by module
  scope (optimum/torch.onnx: ``/model/embed_tokens/Gather``, ``/model/layers.N/Add_1``);
- each boundary ``b_l`` is replaced, for every consumer, by ``b_l * keep_l + set_l`` with two
  new inputs, and that value becomes graph output ``harness/hidden.l``. ``keep=1, set=0`` is the
  unmodified model bit for bit (``x * 1 + 0 == x``); ``keep=0, set=h`` puts exactly ``h`` there
  (``x * 0 + h == h`` for finite ``x``). An additive ``delta = h - own`` would round, so an
  unchanged block would no longer give exactly zero divergence;
- Softmax nodes inside attention become outputs too (fused attention ops have none: then
  ``attention`` is None and the attention family is left out).

The session runs with basic optimisation only and an empty KV cache (past length 0), so the
prompt goes through in one pass as teacher forcing does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._forward import ForwardTrace

HIDDEN = "harness/hidden.{}"
KEEP, SET = "harness/keep.{}", "harness/set.{}"


@dataclass(frozen=True)
class BoundaryPattern:
    """Regular expressions over node names. ``embedding``: the node whose first output is the
    embedding (boundary 0). ``layer`` (group 1 = the layer index): per index, the *last*
    matching node in graph order gives that layer's output (the residual Add after the MLP).
    ``attention`` (group 1 = index): the layer's Softmax, if any."""

    name: str
    embedding: str
    layer: str
    attention: str | None = None


#: Tried in order; the first giving exactly L+1 boundaries is used.
PATTERNS: tuple[BoundaryPattern, ...] = (
    BoundaryPattern(
        "optimum-llama",
        embedding=r"^/model/embed_tokens/Gather$",
        layer=r"^/model/layers\.(\d+)/Add(?:_\d+)?$",
        attention=r"^/model/layers\.(\d+)/self_attn/.*Softmax(?:_\d+)?$",
    ),
    BoundaryPattern(  # plugins/onnx/_tiny.py
        "tiny", embedding=r"^h0$", layer=r"^l(\d+)_h_out$", attention=r"^l(\d+)_probs$"
    ),
)


@dataclass(frozen=True)
class Boundaries:
    pattern: str
    hidden: list[str]  # L+1 tensor names
    attention: list[str] | None  # L Softmax outputs, or None


def find_boundaries(
    graph: Any, layers: int, patterns: Sequence[BoundaryPattern] = PATTERNS
) -> Boundaries:
    """The first pattern giving ``layers + 1`` boundaries; an error naming the counts if none."""
    counts = []
    for pattern in patterns:
        hidden = _hidden_names(graph, pattern)
        if len(hidden) == layers + 1:
            return Boundaries(pattern.name, hidden, _softmax_names(graph, pattern, layers))
        counts.append(f"{pattern.name}: {len(hidden)}")
    raise ValueError(
        f"found no pattern giving {layers + 1} block boundaries ({', '.join(counts)}); pass "
        "OnnxForward(patterns=...) with the node names of this export (see BoundaryPattern)"
    )


def _hidden_names(graph: Any, pattern: BoundaryPattern) -> list[str]:
    embedding = [n.output[0] for n in graph.node if re.match(pattern.embedding, n.name)]
    per_layer: dict[int, str] = {}
    for node in graph.node:
        found = re.match(pattern.layer, node.name)
        if found:
            per_layer[int(found.group(1))] = node.output[0]
    if len(embedding) != 1 or sorted(per_layer) != list(range(len(per_layer))):
        return embedding[:1]
    return [embedding[0], *(per_layer[i] for i in range(len(per_layer)))]


def _softmax_names(graph: Any, pattern: BoundaryPattern, layers: int) -> list[str] | None:
    if pattern.attention is None:
        return None
    found: dict[int, str] = {}
    for node in graph.node:
        match = re.match(pattern.attention, node.name)
        if match and node.op_type == "Softmax":
            found[int(match.group(1))] = node.output[0]
    return [found[i] for i in range(layers)] if sorted(found) == list(range(layers)) else None


def instrument(model: Any, boundaries: Boundaries, dtype: int) -> None:
    """Rewrite ``model`` in place: boundaries overridable and read out, Softmaxes read out."""
    from onnx import helper

    graph = model.graph
    producers = {out: i for i, node in enumerate(graph.node) for out in node.output}
    rename = {name: HIDDEN.format(b) for b, name in enumerate(boundaries.hidden)}
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = rename.get(name, name)
    inserted: dict[int, list[Any]] = {}
    for b, name in enumerate(boundaries.hidden):
        inserted.setdefault(producers[name], []).extend(_override_nodes(graph, b, name, dtype))
    nodes = [n for i, node in enumerate(graph.node) for n in [node, *inserted.get(i, [])]]
    del graph.node[:]
    graph.node.extend(nodes)  # each pair right after its producer: still topologically sorted
    for name in boundaries.attention or []:
        graph.output.append(helper.make_tensor_value_info(name, dtype, None))


def _override_nodes(graph: Any, b: int, name: str, dtype: int) -> list[Any]:
    """``hidden.b = name * keep.b + set.b``, its two inputs and its graph output."""
    from onnx import helper

    kept, out = f"harness/kept.{b}", HIDDEN.format(b)
    graph.input.append(helper.make_tensor_value_info(KEEP.format(b), dtype, [1]))
    dims = [f"harness_b{b}", f"harness_t{b}", f"harness_d{b}"]
    graph.input.append(helper.make_tensor_value_info(SET.format(b), dtype, dims))
    graph.output.append(helper.make_tensor_value_info(out, dtype, None))
    return [
        helper.make_node("Mul", [name, KEEP.format(b)], [kept], name=kept),
        helper.make_node("Add", [kept, SET.format(b)], [out], name=out),
    ]


class OnnxForward:
    """:class:`._forward.ForwardModel` over an ONNX causal LM file (optimum's
    ``text-generation-with-past`` export, as ``harness models export`` writes it)."""

    def __init__(
        self,
        path: str | Path,
        layers: int | None = None,
        patterns: Sequence[BoundaryPattern] = PATTERNS,
        threads: int | None = None,
    ) -> None:
        import onnx

        path = Path(path)
        if path.suffix == ".ort":
            raise ValueError(
                f"{path}: ORT format cannot be rewritten; point the backend at the folder's "
                "model.onnx (set `file: model.onnx`)"
            )
        model = onnx.load(str(path))
        self.inputs = {i.name: i for i in model.graph.input}
        self.past = [n for n in self.inputs if n.startswith("past_key_values.")]
        self.layers = layers or len(self.past) // 2
        if not self.layers:
            raise ValueError(f"{path}: no past_key_values inputs to count layers by; pass layers=")
        self.dtype = _float_type(model, self.past)
        self.boundaries = find_boundaries(model.graph, self.layers, patterns)
        instrument(model, self.boundaries, self.dtype)
        self.session = _session(model, path, threads)
        self.outputs = ["logits", *(HIDDEN.format(b) for b in range(self.layers + 1))]
        self.outputs += self.boundaries.attention or []

    def forward(
        self, ids: Sequence[int], override: tuple[int, np.ndarray] | None = None
    ) -> ForwardTrace:
        feed = self._feed(ids)
        if override is not None:
            self._override(feed, len(ids), *override)
        found = self.session.run(self.outputs, feed)
        logits = found[0][0].astype(np.float64)
        hidden = [h[0].astype(np.float64) for h in found[1 : self.layers + 2]]
        maps = found[self.layers + 2 :]
        attention = [a.astype(np.float64).reshape(-1, len(ids), len(ids)) for a in maps] or None
        return ForwardTrace(hidden, attention, _log_softmax(logits))

    def _override(self, feed: dict[str, np.ndarray], tokens: int, at: int, h: np.ndarray) -> None:
        if not 0 <= at <= self.layers:
            raise ValueError(f"override boundary {at} is outside 0..{self.layers}")
        if np.ndim(h) != 2 or np.shape(h)[0] != tokens:
            raise ValueError(
                f"override at boundary {at} has shape {np.shape(h)}, expected [{tokens}, d]"
            )
        feed[KEEP.format(at)] = np.zeros(1, dtype=_NP[self.dtype])
        feed[SET.format(at)] = np.asarray(h, dtype=_NP[self.dtype])[None]

    def _feed(self, ids: Sequence[int]) -> dict[str, np.ndarray]:
        np_type = _NP[self.dtype]
        feed = {"input_ids": np.asarray([list(ids)], dtype=np.int64)}
        if "attention_mask" in self.inputs:
            feed["attention_mask"] = np.ones((1, len(ids)), dtype=np.int64)
        if "position_ids" in self.inputs:
            feed["position_ids"] = np.arange(len(ids), dtype=np.int64)[None]
        for name in self.past:
            dims = self.inputs[name].type.tensor_type.shape.dim
            feed[name] = np.zeros((1, dims[1].dim_value, 0, dims[3].dim_value), dtype=np_type)
        for b in range(self.layers + 1):
            feed[KEEP.format(b)] = np.ones(1, dtype=np_type)
            feed[SET.format(b)] = np.zeros((1, 1, 1), dtype=np_type)
        return feed


_NP = {1: np.float32, 10: np.float16, 11: np.float64}  # TensorProto FLOAT, FLOAT16, DOUBLE


def _float_type(model: Any, past: list[str]) -> int:
    """The activations' element type: the KV cache's (float32 unless the export is fp16)."""
    inputs = {i.name: i for i in model.graph.input}
    kind = int(inputs[past[0]].type.tensor_type.elem_type) if past else 1
    if kind not in _NP:
        raise ValueError(f"activation type {kind} is not supported (float32, float16, float64)")
    return kind


def _session(model: Any, path: Path, threads: int | None) -> Any:
    """Basic optimisation only: the fusions of the higher levels would rewrite the very
    nodes whose outputs are read."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.intra_op_num_threads = threads or 0
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(-1, keepdims=True)
    out: np.ndarray = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return out


class OnnxTokenizer:
    """The model folder's ``tokenizer.json``, with BOS prepended when its
    ``tokenizer_config.json`` says ``add_bos_token`` (as :class:`._tokenizer.GGUFTokenizer`
    follows the GGUF's ``tokenizer.ggml.add_bos_token``), so both sides give the same ids."""

    def __init__(self, tokenizer: Any, settings: dict[str, Any]) -> None:
        self._tokenizer = tokenizer
        self.add_bos = bool(settings.get("add_bos_token", False))
        bos = settings.get("bos_token")
        bos = bos.get("content") if isinstance(bos, dict) else bos
        found = tokenizer.token_to_id(bos) if isinstance(bos, str) else None
        self.bos: int | None = found if found is not None else settings.get("bos_token_id")

    def encode(self, text: str, bos: bool | None = None) -> list[int]:
        ids = list(self._tokenizer.encode(text, add_special_tokens=False).ids)
        add = self.add_bos if bos is None else bos
        return [int(self.bos), *ids] if add and self.bos is not None else ids
