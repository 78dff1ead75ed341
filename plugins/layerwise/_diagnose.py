"""Where a changed model C departs from its reference R, layer by layer, on one probe text.

Layer 0 is the token embedding; layer ``l`` (1..L) is decoder block ``l - 1``. Two views:

- **local** (the layer alone): block ``l`` of each model is fed the *reference's* input
  ``h^R_{l-1}``, so a difference shows up only at the layer that causes it. This is what names
  the most divergent layer and sets the learning-rate multipliers.
- **path** (``path_*``): each model runs on its own hidden states, so differences accumulate;
  this is what the changed model really computes.

Derivative families are local too. The scalar output is ``y = sum_t log p_R(g_t)``, the
reference's log-probability of its own greedy next tokens. ``G_l = dy/dh^R_l`` comes from one
backward pass through R. For block ``l`` of model X, ``s_X(x) = G_l . block_X(x)`` carries that
output sensitivity back through the block alone:

- Jacobian alignment: ``cos(ds_R/dx, ds_C/dx)`` at ``x = h^R_{l-1}`` (for R this *is*
  ``dy/dh_{l-1}``); divergence ``1 - cos``.
- Curvature: Hutchinson's ``mean_v v^T (d2 s_X / dx2) v`` over the same Rademacher ``v`` for
  both models; divergence ``|t_R - t_C| / (|t_R| + |t_C|)``.

This is our reconstruction of Kokane et al. (arXiv 2407.04871), whose exact maps and formulas
are not public: see docs/layerwise.md for what is the paper's and what is ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _measures as m
from ._llama import Llama
from ._llama import Trace
from ._torch import torch

Tensor = torch.Tensor

FAMILIES = ("hidden", "attention", "jacobian", "curvature")
#: Per family: the layer entry's key holding the divergence D_l (larger = further apart).
DIVERGENCE_KEYS = {
    "hidden": "rel_l2",
    "attention": "attention_js",
    "jacobian": "jacobian_div",
    "curvature": "curvature_div",
}


@dataclass(frozen=True)
class ProbeOptions:
    families: tuple[str, ...] = FAMILIES
    hutchinson_samples: int = 4
    seed: int = 0


@dataclass(frozen=True)
class ReferencePass:
    """The reference's trace on one probe and ``dy/dh_l`` per boundary (None when no
    derivative family is asked for): computed once per probe, shared by every variant."""

    trace: Trace
    y_grads: list[Tensor | None]


def reference_pass(model: Llama, ids: Sequence[int], options: ProbeOptions) -> ReferencePass:
    derivatives = bool({"jacobian", "curvature"} & set(options.families))
    return ReferencePass(*_reference_pass(model, ids, derivatives))


def diagnose(
    reference: Llama,
    changed: Llama,
    ids: Sequence[int],
    options: ProbeOptions,
    ref: ReferencePass | None = None,
) -> dict[str, Any]:
    """Per-layer measures and output statistics of ``changed`` against ``reference``.

    numpy's BLAS runs on one thread here: the matrices are small (tokens x width), and its
    spinning threads slowed a probe threefold on a busy machine."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _diagnose(reference, changed, ids, options, ref)


def _diagnose(
    reference: Llama,
    changed: Llama,
    ids: Sequence[int],
    options: ProbeOptions,
    ref: ReferencePass | None,
) -> dict[str, Any]:
    ref = ref or reference_pass(reference, ids, options)
    ref_trace, y_grads = ref.trace, ref.y_grads
    with torch.no_grad():
        path = changed.run(ids)
    layers = [_embedding_layer(ref_trace, path)]
    rope = reference.rope(len(ids), ref_trace.hidden[0].dtype)
    for index in range(1, reference.config.layers + 1):
        layer = _block_layer(reference, changed, index, ref_trace, path, rope, y_grads, options)
        layers.append(layer)
    targets = list(ids[1:])
    output = m.output_stats(_np(ref_trace.logprobs[:-1]), _np(path.logprobs[:-1]), targets)
    return {"layers": layers, "output": output}


def _reference_pass(
    model: Llama, ids: Sequence[int], grads: bool
) -> tuple[Trace, list[Tensor | None]]:
    """R's trace, and ``dy/dh_l`` for every block output when derivatives are asked for."""
    if not grads:
        with torch.no_grad():
            trace = model.run(ids)
        return trace, [None] * len(trace.hidden)
    with torch.enable_grad():
        leaf = model.embed_ids(ids).detach().requires_grad_(True)  # frozen weights welcome
        trace = model.run(ids, embedded=leaf)
        greedy = trace.logprobs.detach().argmax(-1)
        y = trace.logprobs.gather(-1, greedy[:, None]).sum()
        found = torch.autograd.grad(y, trace.hidden)  # no .grad left on any parameter
    return _detached(trace), [g.detach() for g in found]


def _detached(trace: Trace) -> Trace:
    return Trace(
        [h.detach() for h in trace.hidden],
        [a.detach() for a in trace.attention],
        trace.logprobs.detach(),
    )


def _embedding_layer(ref: Trace, path: Trace) -> dict[str, Any]:
    r, c = _np(ref.hidden[0]), _np(path.hidden[0])
    hidden = _hidden(r, c)
    return {
        "layer": 0,
        "name": "embedding",
        **hidden,
        **{f"path_{k}": v for k, v in hidden.items()},
    }


def _hidden(r: np.ndarray, c: np.ndarray) -> dict[str, float]:
    return {"rel_l2": m.rel_l2(r, c), "cosine": m.cosine(r, c), "cka": m.linear_cka(r, c)}


def _block_layer(
    reference: Llama,
    changed: Llama,
    index: int,
    ref: Trace,
    path: Trace,
    rope: tuple[Tensor, Tensor],
    y_grads: list[Tensor | None],
    options: ProbeOptions,
) -> dict[str, Any]:
    block_r, block_c = reference.blocks[index - 1], changed.blocks[index - 1]
    x = ref.hidden[index - 1]
    with torch.no_grad():
        local, probs = block_c(x, rope)
    layer: dict[str, Any] = {"layer": index, "name": f"block {index - 1}"}
    layer |= _hidden(_np(ref.hidden[index]), _np(local))
    layer |= {
        f"path_{k}": v for k, v in _hidden(_np(ref.hidden[index]), _np(path.hidden[index])).items()
    }
    if "attention" in options.families:
        heads = m.attention_js(_np(ref.attention[index - 1]), _np(probs))
        path_heads = m.attention_js(_np(ref.attention[index - 1]), _np(path.attention[index - 1]))
        layer |= {"attention_js": float(heads.mean()), "attention_js_heads": heads.tolist()}
        layer["path_attention_js"] = float(path_heads.mean())
    upstream = y_grads[index]
    if upstream is not None:
        layer |= _derivatives(block_r, block_c, x, rope, upstream, index, options)
    return layer


def _derivatives(
    block_r: torch.nn.Module,
    block_c: torch.nn.Module,
    x: Tensor,
    rope: tuple[Tensor, Tensor],
    upstream: Tensor,
    index: int,
    options: ProbeOptions,
) -> dict[str, float]:
    def through(block: torch.nn.Module) -> Any:
        return lambda inp: (block(inp, rope)[0] * upstream).sum()

    out: dict[str, float] = {}
    with torch.enable_grad():
        if "jacobian" in options.families:
            g_r, g_c = m.gradient(through(block_r), x), m.gradient(through(block_c), x)
            out["jacobian_cos"] = m.vector_cosine(_np(g_r), _np(g_c))
            out["jacobian_div"] = max(0.0, 1.0 - out["jacobian_cos"])  # rounding can go below
        if "curvature" in options.families:
            vs = m.rademacher(x.shape, options.hutchinson_samples, options.seed + index, x.dtype)
            t_r = float(np.mean(m.hessian_quadratic_forms(through(block_r), x, vs)))
            t_c = float(np.mean(m.hessian_quadratic_forms(through(block_c), x, vs)))
            out |= {"curvature_r": t_r, "curvature_c": t_c}
            out["curvature_div"] = m.relative_difference(t_r, t_c)
    return out


def _np(t: Tensor) -> np.ndarray:
    return np.asarray(t.detach().double().numpy())


def most_divergent(layers: Sequence[dict[str, Any]], family: str) -> int | None:
    """The layer with the largest divergence of ``family`` (None when it was not measured)."""
    key = DIVERGENCE_KEYS[family]
    scored = [(layer[key], layer["layer"]) for layer in layers if layer.get(key) is not None]
    return max(scored)[1] if scored else None
